"""Reading prompt files: TOML in, :class:`PromptSpec` or a list of every problem out.

Problems name the file, the field and what is wrong, e.g.
``config/prompts/summarize.toml: variants[1].template: line 3: unexpected '}'``.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ValidationError

from promptlab.prompts.errors import PromptError, SpecError, TemplateProblem
from promptlab.prompts.hints import did_you_mean, undeclared_messages
from promptlab.prompts.spec import PromptSpec

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")

# pydantic's wording for the usual mistakes in a hand-written file, said plainly.
_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown key",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a prompt file; prints as ``file: field: message``."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


class PromptFileError(PromptError):
    """Prompt files that cannot be used; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))


def _field(loc: Iterable[int | str], sub: str = "") -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    if sub:
        path = f"{path}{'' if sub.startswith('[') else '.'}{sub}" if path else sub
    return path or "(prompt)"


def _model_at(model: type[BaseModel], loc: Iterable[int | str]) -> type[BaseModel] | None:
    """The pydantic model that validates the object at ``loc`` inside ``model``."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        info = current.model_fields.get(part)
        current = _inner_model(info.annotation) if info is not None else None
    return current


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (tuple, list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if (found := _inner_model(arg)) is not None:
                return found
    return None


def _keys(model: type[BaseModel]) -> list[str]:
    """The keys a file may use for ``model``: field names and their aliases."""
    keys = []
    for name, info in model.model_fields.items():
        keys.append(name)
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            keys += [c for c in alias.choices if isinstance(c, str)]
        elif isinstance(alias, str):
            keys.append(alias)
    return keys


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    model = _model_at(PromptSpec, loc[:-1])
    key = loc[-1] if loc else None
    if model is None or not isinstance(key, str):
        return _MESSAGES["extra_forbidden"]
    return _MESSAGES["extra_forbidden"] + did_you_mean(key, _keys(model))


def problems_from(file: str, exc: ValidationError) -> list[Problem]:
    """Turn pydantic's errors into problems, expanding our :class:`SpecError` lists.

    An unknown key says which known key it is closest to (``did you mean``).
    """
    problems: list[Problem] = []
    errors = exc.errors()
    for err in errors:
        loc = err["loc"]
        if err["type"] == "too_short" and _has_item_errors(loc, errors):
            continue  # items that failed make their list "too short" too: noise
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, SpecError):
            problems += [Problem(file, _field(loc, sub), msg) for sub, msg in cause.problems]
            continue
        message = _MESSAGES.get(err["type"], err["msg"])
        if err["type"] == "extra_forbidden":
            message = _unknown_key(tuple(loc))
        elif err["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        elif err["type"] in ("literal_error", "enum") or err["type"].endswith("_type"):
            message = f"{message}, got {err['input']!r}"
        problems.append(Problem(file, _field(loc), message))
    return problems


def _has_item_errors(loc: tuple[int | str, ...], errors: list[Any]) -> bool:
    return any(len(e["loc"]) > len(loc) and e["loc"][: len(loc)] == loc for e in errors)


def _read(path: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    file = os.fspath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Problem(file, "(file)", "no such file")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(file, "(file)", f"cannot read: {exc}")]
    try:
        return tomllib.loads(text), []
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        if match := _TOML_POSITION.search(message):
            field = f"line {match.group(1)}"
            message = message[: match.start()]
        else:  # pragma: no cover - tomllib always reports a position today
            field = "(toml)"
        return None, [Problem(file, field, f"not valid TOML: {message}")]


ModelRule = Callable[[str], str | None]
"""What the providers say of a ``provider/model`` name: None when it may be called,
otherwise why not (a ``litellm`` provider limited to its allowed routes)."""


def provider_problems(
    data: dict[str, Any], providers: Collection[str], model_rule: ModelRule | None = None
) -> list[tuple[str, str]]:
    """``(field, message)`` for each model raw prompt ``data`` names (a variant's, an
    embedding model) whose provider is not in ``providers``, or that ``model_rule`` refuses. Checked on the raw
    data, so it is reported together with every other problem of the file."""
    problems = []
    for field, model in _named_models(data):
        if "/" not in model:
            continue
        provider = model.split("/", 1)[0]
        if provider not in providers:
            known = ", ".join(sorted(providers)) or "none"
            hint = did_you_mean(provider, providers)
            fix = hint or f"; add [providers.{provider}] to promptlab.toml"
            problems.append(
                (field, f"provider {provider!r} is not configured (configured: {known}){fix}")
            )
        elif model_rule is not None and (refused := model_rule(model)) is not None:
            problems.append((field, refused))
    return problems


def _named_models(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field, provider/model)`` of every model raw prompt ``data`` names: each
    variant's model and embedding model, and the demonstration challenger's."""
    found = []
    variants = data.get("variants")
    for i, variant in enumerate(variants if isinstance(variants, list) else []):
        if not isinstance(variant, dict):
            continue
        if isinstance(variant.get("model"), str):
            found.append((f"variants[{i}].model", variant["model"]))
        demos = variant.get("demos")
        if isinstance(demos, dict) and isinstance(demos.get("embedding_model"), str):
            found.append((f"variants[{i}].demos.embedding_model", demos["embedding_model"]))
    learning = data.get("learning")
    auto = learning.get("demos") if isinstance(learning, dict) else None
    if isinstance(auto, dict) and isinstance(auto.get("embedding_model"), str):
        found.append(("learning.demos.embedding_model", auto["embedding_model"]))
    return found


def undeclared_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field, message)`` for each template in raw prompt ``data`` that reads a variable
    the file does not declare.

    :class:`PromptSpec` checks this too, but only once every field is valid; read from
    the raw data, it is reported together with the file's other problems.
    """
    variables = data.get("variables")
    declared = {
        v["name"]
        for v in (variables if isinstance(variables, list) else [])
        if isinstance(v, dict) and isinstance(v.get("name"), str)
    }
    variants = data.get("variants")
    problems = []
    for i, variant in enumerate(variants if isinstance(variants, list) else []):
        if not isinstance(variant, dict):
            continue
        for key in ("system", "template"):
            source = variant.get(key)
            if not isinstance(source, str):
                continue
            try:
                messages = undeclared_messages(source, declared)
            except TemplateProblem:  # the spec reports the syntax error itself
                continue
            problems += [(f"variants[{i}].{key}", message) for message in messages]
    return problems


def check_prompt_data(
    data: Any,
    source: str,
    *,
    providers: Collection[str] | None = None,
    model_rule: ModelRule | None = None,
) -> tuple[PromptSpec | None, list[Problem]]:
    """A prompt from data in the prompt file's shape (a parsed file, an admin API body),
    or every problem found, each naming ``source`` and the field.

    With ``providers``, a variant whose model names another provider is a problem too,
    and so is one ``model_rule`` refuses.
    """
    if not isinstance(data, dict):
        return None, [Problem(source, "(prompt)", "expected an object with the prompt file's keys")]
    problems = []
    if providers is not None:
        problems = [
            Problem(source, f, m) for f, m in provider_problems(data, providers, model_rule)
        ]
    try:
        spec = PromptSpec.model_validate(data)
    except ValidationError as exc:
        found = problems_from(source, exc)
        # The spec's cross-field rules may not have run: name undeclared variables now
        # (a template with a problem already, broken or reported, keeps only its own).
        reported = {p.field for p in found}
        found += [Problem(source, f, m) for f, m in undeclared_problems(data) if f not in reported]
        return None, found + problems
    return (None if problems else spec), problems


def _parse(
    path: Path, providers: Collection[str] | None = None, model_rule: ModelRule | None = None
) -> tuple[PromptSpec | None, list[Problem]]:
    data, problems = _read(path)
    if data is None:
        return None, problems
    return check_prompt_data(data, os.fspath(path), providers=providers, model_rule=model_rule)


def load_prompt_file(
    path: str | os.PathLike[str],
    *,
    providers: Collection[str] | None = None,
    model_rule: ModelRule | None = None,
) -> PromptSpec:
    """The prompt in one TOML file; raise :class:`PromptFileError` with every problem.

    With ``providers`` (the configured provider names), a variant whose model names
    another provider is a problem too.
    """
    spec, problems = _parse(Path(path), providers, model_rule)
    if spec is None:
        raise PromptFileError(problems)
    return spec


def _duplicate_ids(specs: list[tuple[Path, PromptSpec]]) -> list[Problem]:
    first: dict[str, Path] = {}
    problems = []
    for path, spec in specs:
        if spec.id in first:
            problems.append(
                Problem(
                    os.fspath(path), "id", f"duplicate id {spec.id!r} (also in {first[spec.id]})"
                )
            )
        else:
            first[spec.id] = path
    return problems


def _load_all(
    paths: Iterable[Path], providers: Collection[str] | None, model_rule: ModelRule | None = None
) -> tuple[list[tuple[Path, PromptSpec]], list[Problem]]:
    specs: list[tuple[Path, PromptSpec]] = []
    problems: list[Problem] = []
    for path in paths:
        spec, found = _parse(path, providers, model_rule)
        problems += found
        if spec is not None:
            specs.append((path, spec))
    return specs, problems + _duplicate_ids(specs)


def load_prompt_dir(
    directory: str | os.PathLike[str],
    *,
    providers: Collection[str] | None = None,
    model_rule: ModelRule | None = None,
) -> dict[str, PromptSpec]:
    """Every ``*.toml`` prompt in ``directory`` by id, in file name order.

    Raises :class:`PromptFileError` listing the problems of all files (duplicate ids
    and, with ``providers``, unconfigured providers included) when any file is
    unusable, so one bad file cannot go unnoticed.
    """
    root = Path(directory)
    if not root.is_dir():
        raise PromptFileError([Problem(os.fspath(root), "(dir)", "no such directory")])
    specs, problems = _load_all(sorted(root.glob("*.toml")), providers, model_rule)
    if problems:
        raise PromptFileError(problems)
    return {spec.id: spec for _, spec in specs}


def validate_files(
    paths: Iterable[str | os.PathLike[str]],
    *,
    providers: Collection[str] | None = None,
    model_rule: ModelRule | None = None,
) -> list[Problem]:
    """Every problem of the given prompt files, duplicate ids across them included;
    with ``providers``, variants whose provider is not among them (or whose model
    ``model_rule`` refuses) too."""
    return _load_all((Path(p) for p in paths), providers, model_rule)[1]
