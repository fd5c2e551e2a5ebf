"""The experiment file (``config/experiments/*.toml``): what to run, judge and optimise.

:func:`load_experiment` reads a file and resolves everything it names (the prompt, the
cases file) relative to the file; every problem is reported as ``file: field: message``
(:class:`ExperimentFileError`), the way prompt files are.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from promptlab.lab.datasets import DEFAULT_DATASETS_DIR, DatasetError, read_dataset
from promptlab.lab.evaluators.specs import EvaluatorSpec
from promptlab.lab.objectives import DEFAULT_DIRECTION, METRICS, Constraint, Objective
from promptlab.lab.search.spec import EvolutionSpec
from promptlab.prompts import PromptFileError, PromptSpec, load_prompt_dir, load_prompt_file
from promptlab.prompts.loader import Problem, problems_from

MODEL_NAME_HINT = "'provider/model'"


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CaseSpec(_Spec):
    """One test case: the prompt's variables, the output wanted, the quality it must reach."""

    __test__: ClassVar[bool] = False  # exported as ``TestCase``: not a pytest test class

    id: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    expected: str | None = None
    """Reference output (evaluators and the judge may use it); None: no reference."""
    min_quality: float | None = Field(default=None, ge=0.0, le=1.0)
    """A trial succeeds when its quality reaches this (default: the experiment's)."""


class BudgetSpec(_Spec):
    max_calls: int | None = Field(default=None, ge=1)
    """Most model calls (trials and judge calls) the run may make."""
    max_usd: float | None = Field(default=None, gt=0.0)
    """Most USD the run may spend (trials and judge calls)."""


class ObjectiveSpec(_Spec):
    weight: float = Field(default=1.0, ge=0.0)
    direction: Literal["maximize", "minimize"] | None = None


class ParamRange(_Spec):
    """A numeric parameter ``promptlab optimize`` searches."""

    low: float
    high: float
    step: float | None = None
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> ParamRange:
        if self.high < self.low:
            raise ValueError("high must be >= low")
        return self


class OptimizeSpec(_Spec):
    """``[optimize]``: the search space and how many trials ``promptlab optimize`` runs."""

    trials: int = Field(default=20, ge=1)
    seed: int = 0
    params: dict[Literal["temperature", "top_p", "max_tokens"], ParamRange] = Field(
        default_factory=dict
    )
    cases_per_trial: int | None = Field(default=None, ge=1)
    """Evaluate each trial on this many cases (default: all)."""


class ExperimentSpec(_Spec):
    """A parsed experiment file (before its prompt and cases are resolved)."""

    name: str = Field(min_length=1, max_length=128)
    prompt: str
    """A prompt id under the prompts dir, or a prompt file path (relative to this file)."""
    variants: list[str] | None = None
    """Variants to run (default: all of the prompt's)."""
    models: list[str] | None = None
    """``provider/model`` to run every variant on (default: each variant's own model)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Model parameters applied on top of each variant's (e.g. ``temperature``)."""
    repeats: int = Field(default=1, ge=1, le=1000)
    seed: int | None = None
    """When set, repeat ``r`` sends ``seed = seed + r`` (OpenAI's best-effort ``seed``
    parameter; the simulated provider honours it exactly), so a run can be reproduced.
    Leave unset for providers that reject the parameter."""
    concurrency: int = Field(default=4, ge=1, le=256)
    timeout_s: float | None = Field(default=None, gt=0)
    min_quality: float = Field(default=0.5, ge=0.0, le=1.0)
    """Default success threshold of a case that sets none."""
    test: Literal["auto", "permutation", "t", "wilcoxon"] = "auto"
    """The paired test that decides ``significant``: ``auto`` takes the exact sign-flip
    test below 30 cases or for constant differences, the paired t-test otherwise;
    ``permutation`` always the sign-flip test; ``t`` and ``wilcoxon`` those tests where
    they are defined (see :mod:`lab.stats.paired`). The report names the test used."""
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    cases_file: str | None = None
    dataset: str | None = None
    """A dataset's name (``promptlab dataset create``): its cases, added to the others."""
    datasets_dir: str | None = None
    """Where ``dataset`` is (relative to the experiment file; default
    ``.promptlab/datasets`` in the working directory)."""
    cases: list[CaseSpec] = Field(default_factory=list)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    evaluators: list[EvaluatorSpec] = Field(default_factory=list)
    objectives: dict[str, ObjectiveSpec] = Field(
        default_factory=lambda: {"quality": ObjectiveSpec()}
    )
    constraints: dict[str, str] = Field(default_factory=dict)
    optimize: OptimizeSpec = Field(default_factory=OptimizeSpec)
    evolution: EvolutionSpec = Field(default_factory=EvolutionSpec)
    """``[evolution]``: what ``promptlab evolve`` uses (see :mod:`lab.search.spec`)."""
    results: str | None = None
    """JSONL file the trials are appended to (default ``.promptlab/experiments/<name>.jsonl``)."""

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: list[str] | None) -> list[str] | None:
        for model in value or []:
            if "/" not in model.strip("/"):
                raise ValueError(f"expected {MODEL_NAME_HINT}, got {model!r}")
        return value

    @field_validator("objectives")
    @classmethod
    def _check_objectives(cls, value: dict[str, ObjectiveSpec]) -> dict[str, ObjectiveSpec]:
        for metric in value:
            if metric not in METRICS:
                raise ValueError(f"unknown objective {metric!r}; known: {', '.join(METRICS)}")
        return value

    @field_validator("constraints")
    @classmethod
    def _check_constraints(cls, value: dict[str, str]) -> dict[str, str]:
        for metric, text in value.items():
            Constraint.parse(metric, text)
        return value

    def objective_list(self) -> list[Objective]:
        return [
            Objective(m, o.weight, o.direction or DEFAULT_DIRECTION.get(m, "minimize"))
            for m, o in self.objectives.items()
        ]

    def constraint_list(self) -> list[Constraint]:
        return [Constraint.parse(m, t) for m, t in self.constraints.items()]


class ExperimentFileError(Exception):
    """An experiment file that cannot be run; ``problems`` lists every problem."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))


class Experiment(BaseModel):
    """An experiment ready to run: its spec, the prompt, the variants and the cases."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    spec: ExperimentSpec
    prompt: PromptSpec
    cases: list[CaseSpec]
    source: str | None = None
    """The file it came from, if any."""

    @property
    def id(self) -> str:
        return self.spec.name

    def variant_names(self) -> list[str]:
        return self.spec.variants or [v.name for v in self.prompt.variants]

    def datasets_path(self) -> Path:
        """Where the experiment's datasets are: its ``dataset`` and the pools of
        ``demos = { pool = "<dataset>" }`` variants."""
        return datasets_dir(self.spec, Path(self.source).parent if self.source else Path.cwd())

    def results_path(self) -> Path:
        if self.spec.results:
            base = Path(self.source).parent if self.source else Path.cwd()
            return base / self.spec.results
        return Path(".promptlab") / "experiments" / f"{self.spec.name}.jsonl"


def cases_from_examples(prompt: PromptSpec) -> list[CaseSpec]:
    return [
        CaseSpec(
            id=ex.name,
            inputs=dict(ex.variables),
            expected=ex.expected,
            min_quality=ex.min_quality,
        )
        for ex in prompt.examples
    ]


def read_cases_file(path: Path) -> list[CaseSpec]:
    """Cases from a JSONL file, one object per line; raise ExperimentFileError."""
    file = os.fspath(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ExperimentFileError([Problem(file, "(file)", f"cannot read: {exc}")]) from None
    cases: list[CaseSpec] = []
    problems: list[Problem] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            cases.append(CaseSpec.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(Problem(file, f"line {number}", f"not JSON: {exc.msg}"))
        except ValidationError as exc:
            problems += [
                Problem(file, f"line {number}: {p.field}", p.message)
                for p in problems_from(file, exc)
            ]
    if problems:
        raise ExperimentFileError(problems)
    return cases


def datasets_dir(spec: ExperimentSpec, base: Path) -> Path:
    """``datasets_dir`` relative to ``base`` (the experiment file's folder), or the default
    ``.promptlab/datasets`` in the working directory, as the learner reads it."""
    return base / spec.datasets_dir if spec.datasets_dir else DEFAULT_DATASETS_DIR


def _dataset_cases(spec: ExperimentSpec, base: Path, file: str) -> list[CaseSpec]:
    """The cases of ``spec.dataset``; raise ExperimentFileError naming what is wrong."""
    assert spec.dataset is not None
    try:
        rows = read_dataset(datasets_dir(spec, base), spec.dataset)
    except DatasetError as exc:
        raise ExperimentFileError([Problem(file, "dataset", str(exc))]) from None
    cases: list[CaseSpec] = []
    problems: list[Problem] = []
    for number, row in enumerate(rows, 1):
        try:
            cases.append(CaseSpec.model_validate(row))
        except ValidationError as exc:
            problems += [
                Problem(file, f"dataset {spec.dataset} line {number}: {p.field}", p.message)
                for p in problems_from(file, exc)
            ]
    if problems:
        raise ExperimentFileError(problems)
    return cases


def resolve(
    spec: ExperimentSpec,
    *,
    source: str | None = None,
    prompts_dir: str | os.PathLike[str] | None = None,
    prompt: PromptSpec | None = None,
) -> Experiment:
    """Find the prompt and the cases ``spec`` names; check that its variants exist."""
    file = source or "(experiment)"
    base = Path(source).parent if source else Path.cwd()
    problems: list[Problem] = []
    if prompt is None:
        prompt = _find_prompt(spec.prompt, base, prompts_dir, file)
    known = {v.name for v in prompt.variants}
    for i, name in enumerate(spec.variants or []):
        if name not in known:
            problems.append(
                Problem(file, f"variants[{i}]", f"prompt {prompt.id!r} has no variant {name!r}")
            )
    problems += _dataset_pool_problems(spec, prompt, base, file)
    cases = list(spec.cases)
    if spec.cases_file:
        cases += read_cases_file(base / spec.cases_file)
    if spec.dataset:
        cases += _dataset_cases(spec, base, file)
    if not spec.cases and not spec.cases_file and not spec.dataset:
        cases = cases_from_examples(prompt)
    if not cases:
        problems.append(
            Problem(file, "cases", "no cases: add [[cases]], cases_file, dataset or examples")
        )
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            problems.append(Problem(file, "cases", f"duplicate case id {case.id!r}"))
        seen.add(case.id)
    if problems:
        raise ExperimentFileError(problems)
    return Experiment(spec=spec, prompt=prompt, cases=cases, source=source)


def _dataset_pool_problems(
    spec: ExperimentSpec, prompt: PromptSpec, base: Path, file: str
) -> list[Problem]:
    """A variant to run whose demonstrations come from a dataset that cannot be read
    (offline, as live, the pool is the dataset: a missing one is an error here, not a run
    without demonstrations)."""
    problems = []
    names = spec.variants or [v.name for v in prompt.variants]
    for variant in (v for v in prompt.variants if v.name in names and v.demos is not None):
        pool = variant.demos.pool if variant.demos is not None else None
        if isinstance(pool, str) and pool not in ("production", "examples"):
            try:
                read_dataset(datasets_dir(spec, base), pool)
            except DatasetError as exc:
                problems.append(Problem(file, f"variant {variant.name}: demos.pool", str(exc)))
    return problems


def _find_prompt(
    name: str, base: Path, prompts_dir: str | os.PathLike[str] | None, file: str
) -> PromptSpec:
    try:
        if name.endswith(".toml") or "/" in name:
            return load_prompt_file(base / name)
        directory = Path(prompts_dir) if prompts_dir else base.parent / "prompts"
        prompts = load_prompt_dir(directory)
    except PromptFileError as exc:
        raise ExperimentFileError(exc.problems) from None
    if name not in prompts:
        raise ExperimentFileError(
            [Problem(file, "prompt", f"no prompt {name!r} in {os.fspath(directory)}")]
        )
    return prompts[name]


def parse_experiment(data: dict[str, Any], file: str = "(experiment)") -> ExperimentSpec:
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise ExperimentFileError(problems_from(file, exc)) from None


def load_experiment(
    path: str | os.PathLike[str], *, prompts_dir: str | os.PathLike[str] | None = None
) -> Experiment:
    """Read, validate and resolve an experiment file; raise :class:`ExperimentFileError`.

    A prompt id is looked up in ``prompts_dir`` (default: ``../prompts`` next to the
    experiments directory, i.e. ``config/prompts``).
    """
    file = os.fspath(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExperimentFileError([Problem(file, "(file)", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentFileError([Problem(file, "(file)", f"cannot read: {exc}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentFileError([Problem(file, "(toml)", f"not valid TOML: {exc}")]) from None
    return resolve(parse_experiment(data, file), source=file, prompts_dir=prompts_dir)
