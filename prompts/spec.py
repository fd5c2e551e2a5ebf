"""The prompt model: a prompt file (``config/prompts/*.toml``) as frozen pydantic models.

A :class:`PromptSpec` can never be invalid: building one (from a file, the admin API or
a mutation) runs every rule, and a rule that fails raises. Rules report through
:class:`SpecError`, which carries a list of ``(field, message)`` pairs so that the
loader can name every problem and exactly where it is (``variants[1].template``).
Variables are declared with :class:`VariableSpec` (:mod:`prompts.variable_spec`).

Why one module of this size: a prompt and its variants validate each other (versions,
the champion, declared variables against templates); the sections that stand alone
live in :mod:`prompts.sections` and :mod:`prompts.variable_spec`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from promptlab.events.kinds import VariantLifecycle, VariantOrigin
from promptlab.events.models import JsonDict, VariantRegistered, deterministic_event_id
from promptlab.prompts.analytics import ValuePicker
from promptlab.prompts.base import SpecModel
from promptlab.prompts.config import PromotionConfig
from promptlab.prompts.demos import DEMOS_VARIABLE, DemosSpec
from promptlab.prompts.errors import SpecError, VariableError
from promptlab.prompts.hints import did_you_mean, undeclared_messages
from promptlab.prompts.params import check_params
from promptlab.prompts.sections import (
    ConstraintsSpec,
    EvaluationSpec,
    ExampleSpec,
    LearningSpec,
    RewardSpec,
    RoutingSpec,
)
from promptlab.prompts.templates import absent_value_problems, check_template, template_variables
from promptlab.prompts.variable_spec import FormatSpec, VariableSpec, VariableType
from promptlab.prompts.variables import VariablesValidator

__all__ = [
    "Category",
    "ConstraintsSpec",
    "EvaluationSpec",
    "ExampleSpec",
    "FormatSpec",
    "LearningSpec",
    "PromptSpec",
    "RewardSpec",
    "RoutingSpec",
    "SpecError",
    "VariableSpec",
    "VariableType",
    "VariantSpec",
    "validate_variables",
]

Category = Literal["chat", "documentation", "code", "analysis", "system"]

# \Z, not $: "$" also matches before a final newline, and a name ending in "\n" would
# reach HTTP headers (X-Promptlab-Variant) and break every response that carries it.
PROMPT_ID = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")
"""``+`` for the learner's ``<champion>+demos``; every character is safe in a header."""
MODEL_NAME = re.compile(r"[A-Za-z0-9_.-]+/[!-~]+\Z")
"""``provider/model``: printable ASCII without spaces, so it is safe in a header too."""
_EVENT_FIELDS = (
    "model", "params", "system", "template", "origin", "parent", "strategy", "status",
    "parents", "generation", "demos",
)  # fmt: skip
"""The fields a variant and its ``VariantRegistered`` event share under the same name."""
AppSystem = Literal["drop", "prepend", "append"]
"""Where a routed call puts the app's ``system``/``developer`` messages (``drop``: nowhere)."""
MAX_VARIABLES = 50
"""Most variables one prompt may declare."""


class VariantSpec(SpecModel):
    """One way to run a prompt: a model, its parameters and templates."""

    name: str
    model: str
    """``provider/model``, e.g. ``openai/gpt-4o-mini`` or ``simulated/good``."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Model parameters sent with every call (temperature, max_tokens, ...)."""
    system: str | None = None
    """Jinja2 template of the system message; no system message when None."""
    template: str
    """Jinja2 template of the user message."""
    champion: bool = False
    """The variant that gets the traffic not spent on exploration."""
    status: VariantLifecycle = "active"
    """``draft``: validated and rendered but never routed; ``active``: competes as
    champion or challenger; ``deprecated``: no new traffic, statistics kept;
    ``archived``: also hidden from default lists."""
    origin: VariantOrigin = "config"
    parent: str | None = None
    """Variant this one was bred from (mutation)."""
    strategy: str | None = None
    """Mutation strategy that produced it."""
    parents: tuple[str, ...] = ()
    """Every variant this one was bred from (two for a crossover); ``parent`` is the first."""
    generation: int | None = None
    """Generation of the search that bred it (0 is the seed)."""
    demos: DemosSpec | None = None
    """Demonstrations shown with each call (:mod:`prompts.demos`); None: none."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not VARIANT_NAME.match(value) or len(value) > 64:
            raise SpecError(
                [("", "letters, digits, '_', '-' and '.', at most 64, got " + repr(value))]
            )
        return value

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        if not MODEL_NAME.match(value):
            raise SpecError(
                [
                    (
                        "",
                        f"expected 'provider/model' (no spaces or control characters), got {value!r}",
                    )
                ]
            )
        return value

    @field_validator("template", "system")
    @classmethod
    def _check_template(cls, value: str | None) -> str | None:
        if value is not None and (problems := check_template(value)):
            raise SpecError([("", message) for message in problems])
        return value

    @field_validator("params")
    @classmethod
    def _check_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        if problems := check_params(value):
            raise SpecError(problems)
        return value

    @cached_property
    def version(self) -> str:
        """Stable id of the content that changes behaviour: model, params, system, template.

        16 hex characters of a SHA-256; the name, champion flag and lineage are not part
        of it, so renaming or promoting a variant keeps its version.
        """
        fields: dict[str, Any] = {
            "model": self.model, "params": self.params, "system": self.system,
            "template": self.template,
        }  # fmt: skip
        if self.demos is not None:
            # Only when set, so a variant without demonstrations keeps its old version.
            # An inline pool is part of it; a pool that grows (production) is not.
            fields["demos"] = self.demos.model_dump(mode="json")
        content = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(content.encode()).hexdigest()[:16]

    @cached_property
    def variables_used(self) -> frozenset[str]:
        """Variables the system and user templates read (``demos`` of a block variant
        is not a variable: the sidecar provides it)."""
        names = template_variables(self.template)
        if self.system is not None:
            names |= template_variables(self.system)
        if self.demos is not None and self.demos.format == "block":
            names -= {DEMOS_VARIABLE}
        return names

    @model_validator(mode="after")
    def _check_demos(self) -> VariantSpec:
        if self.demos is None or self.demos.format != "block":
            return self
        placed = template_variables(self.template)
        if self.system is not None:
            placed |= template_variables(self.system)
        if DEMOS_VARIABLE not in placed:
            raise SpecError(
                [("demos.format", "'block' needs the template (or system) to place {{ demos }}")]
            )
        return self

    @property
    def provider(self) -> str:
        """The provider part of :attr:`model` (``openai`` in ``openai/gpt-4o-mini``)."""
        return self.model.split("/", 1)[0]

    def to_event(
        self, prompt_id: str, variables: Sequence[JsonDict] = (), **extra: Any
    ) -> VariantRegistered:
        """The event announcing this variant of prompt ``prompt_id``.

        This and :meth:`from_event` are the one mapping between a variant and its event.
        ``variables`` are the prompt's declarations (JSON), so a reader can render the
        template without the file. The event id derives from the prompt, name, version,
        champion flag (and a status other than ``active``): every replica announcing the
        same variant produces the same id and JetStream's duplicate window keeps one.
        ``extra`` sets further event fields (``occurred_at``, ``event_id``).
        """
        parts: list[object] = [prompt_id, self.name, self.version, self.champion]
        if self.status != "active":
            parts.append(self.status)
        fields: dict[str, Any] = {key: getattr(self, key) for key in _EVENT_FIELDS}
        if self.demos is not None:
            fields["demos"] = self.demos.model_dump(mode="json")
        fields.update(
            event_id=deterministic_event_id("variant.registered", *parts),
            prompt_id=prompt_id,
            variant=self.name,
            version=self.version,
            variables=list(variables),
            champion=self.champion,
        )
        fields.update(extra)
        return VariantRegistered(**fields)

    @classmethod
    def from_event(cls, event: VariantRegistered) -> VariantSpec:
        """The variant ``event`` announces, validated like any new one.

        The champion flag is not taken over: who is champion is the learner's decision
        (and :meth:`PromptSpec.with_variant` keeps the prompt's own). Raises
        ``pydantic.ValidationError`` when the event describes a variant this version of
        promptlab refuses.
        """
        fields = {key: getattr(event, key) for key in _EVENT_FIELDS}
        return cls.model_validate({"name": event.variant, **fields})


# --------------------------------------------------------------------------- prompt


class PromptSpec(SpecModel):
    """A prompt: typed variables, how it is rewarded and routed, and its variants."""

    id: str
    """Slug: lowercase letters, digits, ``_`` and ``-``. Routed as ``promptlab/<id>``."""
    description: str = ""
    category: Category = "chat"
    tags: tuple[str, ...] = ()
    author: str = ""
    language: str = "en"
    """Natural language of the prompt text (BCP 47)."""
    variables: tuple[VariableSpec, ...] = ()
    reward: RewardSpec = Field(default_factory=RewardSpec)
    routing: RoutingSpec = Field(default_factory=RoutingSpec)
    promotion: dict[str, Any] = Field(default_factory=dict)
    """Overrides of ``[learner.promotion]`` for this prompt."""
    constraints: ConstraintsSpec = Field(default_factory=ConstraintsSpec)
    examples: tuple[ExampleSpec, ...] = ()
    evaluation: EvaluationSpec | None = None
    """Online evaluation of sampled live calls (None: none)."""
    learning: LearningSpec = Field(default_factory=LearningSpec)
    """Learning from production traffic (``[learning]``): capture of examples."""
    variants: tuple[VariantSpec, ...] = Field(min_length=1)
    """At least one; exactly one is champion (the first when none is marked)."""
    app_system: AppSystem = "drop"
    """What a routed call does with the app's own ``system``/``developer`` messages:
    ``drop`` (the variant's templates own the instructions), ``prepend`` (before the
    variant's rendered messages) or ``append`` (after the variant's system message,
    before its user message). Frameworks such as DSPy put their output format there."""

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not PROMPT_ID.match(value) or len(value) > 64:
            raise SpecError([("", f"{value!r} is not a slug: [a-z0-9][a-z0-9_-]*, at most 64")])
        return value

    @field_validator("promotion")
    @classmethod
    def _check_promotion(cls, value: dict[str, Any]) -> dict[str, Any]:
        known = PromotionConfig.model_fields
        problems = [
            (key, f"unknown key; one of {', '.join(known)}" + did_you_mean(key, known))
            for key in value
            if key not in known
        ]
        if not problems:
            try:
                PromotionConfig().merged(value)
            except ValidationError as exc:
                problems = [(".".join(map(str, err["loc"])), err["msg"]) for err in exc.errors()]
        if problems:
            raise SpecError(problems)
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_champion(cls, data: Any) -> Any:
        # No variant marked: the first is champion. Done on the input so that
        # ``variant.champion`` and ``prompt.champion`` always agree.
        if not isinstance(data, dict) or not isinstance(data.get("variants"), list | tuple):
            return data
        variants = list(data["variants"])
        if not variants or any(_marked_champion(v) for v in variants):
            return data
        first = variants[0]
        if isinstance(first, VariantSpec):
            variants[0] = first.model_copy(update={"champion": True})
        elif isinstance(first, dict):
            variants[0] = {**first, "champion": True}
        return {**data, "variants": variants}

    @model_validator(mode="after")
    def _check_references(self) -> PromptSpec:
        if problems := self._reference_problems():
            raise SpecError(problems)
        return self

    def _reference_problems(self) -> list[tuple[str, str]]:
        """Rules that relate one part of the prompt to another."""
        problems: list[tuple[str, str]] = []
        declared = {v.name for v in self.variables}
        # A call may leave these out: they render as an empty value (prompts.sandbox).
        may_be_absent = {v.name for v in self.variables if not v.required and v.default is None}
        if len(self.variables) > MAX_VARIABLES:
            problems.append(
                ("variables", f"{len(self.variables)} declared, at most {MAX_VARIABLES}")
            )
        problems += _duplicates("variables", [v.name for v in self.variables])
        problems += _duplicates("variants", [v.name for v in self.variants])
        problems += _duplicates("examples", [e.name for e in self.examples])
        if any(v.demos is not None for v in self.variants) and DEMOS_VARIABLE in declared:
            problems.append(
                ("variables", f"{DEMOS_VARIABLE!r} is the demonstrations' name; call it otherwise")
            )
        champions = [i for i, v in enumerate(self.variants) if v.champion]
        if len(champions) > 1:
            names = ", ".join(self.variants[i].name for i in champions)
            for i in champions[1:]:
                problems.append((f"variants[{i}].champion", f"more than one champion ({names})"))
        for i, variant in enumerate(self.variants):
            for key in ("system", "template"):
                source = getattr(variant, key)
                if source is None:
                    continue
                provided = (
                    {DEMOS_VARIABLE} if variant.demos and variant.demos.format == "block" else set()
                )
                problems += [
                    (f"variants[{i}].{key}", message)
                    for message in undeclared_messages(source, declared | provided)
                ]
                problems += [
                    (f"variants[{i}].{key}", message)
                    for message in absent_value_problems(source, may_be_absent)
                ]
            if not self.constraints.allows_model(variant.model):
                problems.append(
                    (f"variants[{i}].model",
                     f"{variant.model!r} is not in constraints.allowed_models")
                )  # fmt: skip
            cap = self.constraints.max_tokens
            tokens = variant.params.get("max_tokens")
            if cap is not None and isinstance(tokens, int) and tokens > cap:
                problems.append(
                    (
                        f"variants[{i}].params.max_tokens",
                        f"{tokens} exceeds constraints.max_tokens {cap}",
                    )
                )
        problems += self._lifecycle_problems()
        problems += self._weight_problems()
        if not problems:  # examples need sound declarations to be checked against
            for i, example in enumerate(self.examples):
                try:
                    self.variables_validator(example.variables)
                except VariableError as exc:
                    problems.append(
                        (f"examples[{i}].variables.{exc.variable}", f"{exc.rule}: {exc.message}")
                    )
        return problems

    def _lifecycle_problems(self) -> list[tuple[str, str]]:
        problems = [
            (f"variants[{i}].status", f"the champion must be active, not {v.status}")
            for i, v in enumerate(self.variants)
            if v.champion and v.status != "active"
        ]
        if not any(v.status == "active" for v in self.variants):
            problems.append(("variants", "at least one variant must be active"))
        return problems

    def _weight_problems(self) -> list[tuple[str, str]]:
        names = {v.name for v in self.variants}
        problems = [
            (f"routing.weights.{weighted}", "no variant of that name")
            for weighted in self.routing.weights
            if weighted not in names
        ]
        if self.routing.strategy == "fixed":
            problems += [
                (f"variants[{i}]",
                 f"{v.name!r} has no weight under routing.weights (strategy 'fixed'); "
                 "give it one (0 for no traffic)")
                for i, v in enumerate(self.variants)
                if v.status == "active" and v.name not in self.routing.weights
            ]  # fmt: skip
        return problems

    # ----------------------------------------------------------------------- access

    @cached_property
    def champion(self) -> VariantSpec:
        """The variant marked champion in the file (the first when none is marked)."""
        return next(v for v in self.variants if v.champion)

    @cached_property
    def _by_name(self) -> dict[str, VariantSpec]:
        return {v.name: v for v in self.variants}

    def variant(self, name: str) -> VariantSpec:
        """The variant called ``name``; raise ``KeyError`` naming the known ones."""
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(self._by_name)
            raise KeyError(f"prompt {self.id!r} has no variant {name!r} (has: {known})") from None

    @cached_property
    def variables_validator(self) -> VariablesValidator:
        """This prompt's variable rules, compiled once (see :mod:`prompts.variables`)."""
        return VariablesValidator(self.variables)

    @cached_property
    def value_picker(self) -> ValuePicker:
        """Which of a call's variable values analytics may record (:mod:`prompts.analytics`)."""
        return ValuePicker(self.variables)

    def promotion_config(self, global_cfg: PromotionConfig) -> PromotionConfig:
        """The global ``[learner.promotion]`` with this prompt's overrides applied."""
        return global_cfg.merged(self.promotion)

    def with_variant(self, variant: VariantSpec) -> PromptSpec:
        """A copy with ``variant`` added, or replacing the variant of the same name.

        The champion never moves here (promotion is the learner's decision): the
        variant's ``champion`` flag is set to that of the variant it replaces, or False.
        Every rule runs again, so an unusable variant raises ``ValidationError``.
        """
        replaced = self._by_name.get(variant.name)
        variant = variant.model_copy(
            update={"champion": replaced is not None and replaced.champion}
        )
        variants = [variant if v.name == variant.name else v for v in self.variants]
        if replaced is None:
            variants.append(variant)
        data = self.model_dump(by_alias=False)
        data["variants"] = [v.model_dump() for v in variants]
        return type(self).model_validate(data)

    def registered_events(self) -> list[VariantRegistered]:
        """One :class:`VariantRegistered` per variant, to publish when the prompt loads.

        Event ids derive from the prompt, variant, version and champion flag, so every
        sidecar replica announcing the same file produces the same ids and JetStream's
        duplicate window keeps one copy.
        """
        variables = [v.model_dump(mode="json", exclude_defaults=True) for v in self.variables]
        return [v.to_event(self.id, variables) for v in self.variants]


def validate_variables(prompt: PromptSpec, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check ``values`` against ``prompt``'s declared variables and format them.

    Returns a new dict to render with: formatted values plus defaults for missing ones.
    Raises :class:`VariableError` naming the variable and the rule, e.g.
    ``variable 'code': max_length: 5001 characters, at most 5000 allowed``; values the
    prompt does not declare are rejected (rule ``unknown``).
    """
    return prompt.variables_validator(values)


def _marked_champion(variant: object) -> bool:
    if isinstance(variant, VariantSpec):
        return variant.champion
    return isinstance(variant, dict) and variant.get("champion") is True


def _duplicates(field: str, names: list[str]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    problems = []
    for i, name in enumerate(names):
        if name in seen:
            problems.append((f"{field}[{i}].name", f"duplicate name {name!r}"))
        seen.add(name)
    return problems
