"""The Python API for notebooks and scripts: the engine ``promptlab experiment`` uses.

from promptlab import Lab, TestCase

lab = Lab()                                    # openai (key from env) + simulated
lab.register_variant("short", "Summarize: {{ code }}", model="simulated/summarizer")
report = await lab.run_experiment(cases=[TestCase(id="x", inputs={"code": "..."})],
                                  evaluators=[{"kind": "length", "max": 200}])
report.best, report.pareto, report.comparisons, report.to_markdown(), report.to_frame()
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from promptlab.lab.evolution import EvolutionRun, evolve_experiment, resolve_spec
from promptlab.lab.experiment import CaseSpec, Experiment, ExperimentSpec, load_experiment, resolve
from promptlab.lab.optimize import OptimizeOutcome, optimize
from promptlab.lab.report import Report
from promptlab.lab.runner import Publish, RunResult, run_experiment
from promptlab.prompts import PromptSpec, VariantSpec, load_prompt_file

TestCase = CaseSpec
"""One test case: ``id``, ``inputs`` (the prompt's variables), ``expected``, ``min_quality``."""

_JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


class Lab:
    """Variants, cases and evaluators in, typed reports out.

    ``providers`` maps provider names to ``providers.ProviderSettings`` (default: the
    built-ins ``openai`` and ``simulated``); ``client`` replaces them with any object
    that has ``complete(model, body, *, timeout_s=None)``. ``publish`` receives every
    ``ExecutionCompleted`` (e.g. ``EventPublisher.publish``).
    """

    def __init__(
        self,
        *,
        providers: Mapping[str, Any] | None = None,
        client: Any = None,
        publish: Publish | None = None,
        prompt_id: str = "lab",
    ) -> None:
        self._providers = providers
        self._client = client
        self.publish = publish
        self.prompt_id = prompt_id
        self.prompt: PromptSpec | None = None
        self._variants: list[VariantSpec] = []

    # ------------------------------------------------------------------ what to run

    def use_prompt(self, prompt: PromptSpec | str | os.PathLike[str]) -> PromptSpec:
        """Run a prompt file's variants (a path or a loaded spec)."""
        self.prompt = prompt if isinstance(prompt, PromptSpec) else load_prompt_file(prompt)
        return self.prompt

    def register_variant(
        self,
        name: str,
        template: str,
        *,
        model: str = "simulated/summarizer",
        system: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> VariantSpec:
        """Add a variant (added to the prompt in use, or to an ad hoc prompt)."""
        variant = VariantSpec(
            name=name, model=model, template=template, system=system, params=dict(params or {})
        )
        self._variants.append(variant)
        return variant

    def _prompt_for(self, cases: Sequence[CaseSpec]) -> PromptSpec:
        if self.prompt is not None and not self._variants:
            return self.prompt
        if self.prompt is not None:
            base = self.prompt
            for v in self._variants:
                base = base.with_variant(v)
            return base
        if not self._variants:
            raise ValueError("register a variant (or use_prompt) first")
        used: set[str] = set()
        for v in self._variants:
            used |= v.variables_used
        sample = {k: val for c in cases for k, val in c.inputs.items()}
        variables = [
            {"name": n, "type": _JSON_TYPES.get(type(sample.get(n)), "string")}
            for n in sorted(used)
        ]
        return PromptSpec.model_validate(
            {
                "id": self.prompt_id,
                "variables": variables,
                "variants": [v.model_dump() for v in self._variants],
            }
        )

    def experiment(
        self,
        *,
        cases: Sequence[CaseSpec | Mapping[str, Any]] = (),
        name: str = "lab",
        **spec: Any,
    ) -> Experiment:
        """An :class:`~lab.experiment.Experiment` from keyword settings (the TOML keys)."""
        parsed = [c if isinstance(c, CaseSpec) else CaseSpec.model_validate(c) for c in cases]
        prompt = self._prompt_for(parsed)
        experiment_spec = ExperimentSpec.model_validate(
            {"name": name, "prompt": prompt.id, "cases": [c.model_dump() for c in parsed], **spec}
        )
        return resolve(experiment_spec, prompt=prompt)

    # ------------------------------------------------------------------ datasets

    def dataset(
        self, name: str, *, datasets_dir: str | os.PathLike[str] | None = None
    ) -> list[CaseSpec]:
        """The cases of a saved dataset (``promptlab dataset create``), e.g. to pass as
        ``cases=`` (an experiment's ``dataset = "NAME"`` reads the same files)."""
        from promptlab.lab.datasets import DEFAULT_DATASETS_DIR, read_dataset

        rows = read_dataset(datasets_dir or DEFAULT_DATASETS_DIR, name)
        return [CaseSpec.model_validate(row) for row in rows]

    async def create_dataset(
        self,
        name: str,
        prompt: str,
        *,
        storage_url: str,
        datasets_dir: str | os.PathLike[str] | None = None,
        replace: bool = False,
        **filters: Any,
    ) -> list[CaseSpec]:
        """Draw a dataset from the production examples in the learner's database at
        ``storage_url`` (``filters``: the ``learner.datasets.DatasetQuery`` fields, as
        ``promptlab dataset create`` takes them), save it, and return its cases."""
        from promptlab.lab.datasets import DEFAULT_DATASETS_DIR
        from promptlab.learner.datasets import DatasetQuery, create_dataset
        from promptlab.learner.storage.store import Store

        directory = datasets_dir or DEFAULT_DATASETS_DIR
        store = Store(storage_url)
        try:
            await store.create()
            query = DatasetQuery(prompt_id=prompt, **filters)
            await create_dataset(store, directory, name, query, replace=replace)
        finally:
            await store.close()
        return self.dataset(name, datasets_dir=directory)

    # ------------------------------------------------------------------ running

    def _client_context(self) -> Any:
        if self._client is not None:
            return _Borrowed(self._client)
        from promptlab.providers import Providers, merge_providers

        return Providers(merge_providers(self._providers))

    async def run(
        self, experiment: Experiment | str | os.PathLike[str], **kwargs: Any
    ) -> RunResult:
        """Run an experiment (object or file); the report and every trial."""
        if not isinstance(experiment, Experiment):
            experiment = load_experiment(experiment)
        async with self._client_context() as client:
            return await run_experiment(experiment, client, publish=self.publish, **kwargs)

    async def run_experiment(
        self, file: str | os.PathLike[str] | None = None, **spec: Any
    ) -> Report:
        """Run an experiment file, or the registered variants with ``spec`` keywords."""
        experiment = load_experiment(file) if file is not None else self.experiment(**spec)
        return (await self.run(experiment)).report

    async def optimize(
        self, file: str | os.PathLike[str] | None = None, *, trials: int | None = None, **spec: Any
    ) -> OptimizeOutcome:
        """Search variants x models x params (``optimize = {...}`` keyword) with optuna."""
        experiment = load_experiment(file) if file is not None else self.experiment(**spec)
        async with self._client_context() as client:
            return await optimize(experiment, client, trials=trials, publish=self.publish)

    async def evolve(
        self,
        file: str | os.PathLike[str] | None = None,
        *,
        generations: int | None = None,
        population: int | None = None,
        strategies: Sequence[str] | None = None,
        search: str | None = None,
        mutator: str | None = None,
        budget_usd: float | None = None,
        max_calls: int | None = None,
        seed: int | None = None,
        on_generation: Any = None,
        **spec: Any,
    ) -> EvolutionRun:
        """Breed better variants of the seed (``promptlab evolve`` with the same options).

        The experiment is a file, or the registered variants with ``spec`` keywords (its
        ``evolution = {"mutator": ...}`` among them). The result lists every candidate
        with its figures and lineage: ``.best``, ``.result.candidates``,
        ``.result.lineage(name)``, ``.versus_seed(candidate)``, ``.to_json()``.
        """
        experiment = load_experiment(file) if file is not None else self.experiment(**spec)
        options = resolve_spec(
            experiment, generations=generations, population=population,
            strategies=list(strategies) if strategies is not None else None, search=search,
            mutator=mutator, budget_usd=budget_usd, max_calls=max_calls, seed=seed,
        )  # fmt: skip
        async with self._client_context() as client:
            return await evolve_experiment(
                experiment, client, spec=options, publish=self.publish, on_generation=on_generation
            )


class _Borrowed:
    """A caller's client: used, not closed."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def __aenter__(self) -> Any:
        return self.client

    async def __aexit__(self, *_: object) -> None:
        return None


__all__ = ["Lab", "TestCase"]
