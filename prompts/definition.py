"""A whole prompt as data: the prompt file's shape in JSON, its version, its event, and
what changed between two definitions.

The admin API takes a prompt as JSON with the keys of a prompt file; the sidecar stores
and announces it as :class:`~events.models.PromptRegistered`, and every sidecar replica
and the learner rebuild the :class:`~prompts.spec.PromptSpec` from that event. This
module is the one mapping between the three shapes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from promptlab.events.kinds import VariantOrigin
from promptlab.events.models import JsonDict, PromptRegistered
from promptlab.prompts.errors import SpecError
from promptlab.prompts.spec import PromptSpec

__all__ = [
    "PromptChanges",
    "compare_prompts",
    "definition_version",
    "prompt_data",
    "prompt_event",
    "spec_from_event",
]


def prompt_data(spec: PromptSpec) -> JsonDict:
    """``spec`` in the prompt file's shape, as JSON types (keys at their default left out,
    so the data reads like the file it could be written as)."""
    return spec.model_dump(mode="json", exclude_defaults=True)


_LATER_KEYS = {"app_system": "drop"}
"""Prompt keys added later, with the default that leaves a definition's version as it was."""


def definition_version(spec: PromptSpec) -> str:
    """16 hex characters of a SHA-256 of the whole definition: same prompt, same version."""
    data = spec.model_dump(mode="json")
    # Keys added after prompts were first stored count only when set, so a definition
    # stored by an earlier promptlab keeps its version (and is not announced as changed).
    for key, default in _LATER_KEYS.items():
        if data.get(key) == default:
            del data[key]
    content = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def prompt_event(
    spec: PromptSpec,
    *,
    actor: str,
    changes: Sequence[str] = (),
    origin: VariantOrigin = "api",
    **extra: Any,
) -> PromptRegistered:
    """The event announcing ``spec`` (a fresh event id: each registration is an act)."""
    return PromptRegistered(
        prompt_id=spec.id,
        version=definition_version(spec),
        spec=prompt_data(spec),
        origin=origin,
        actor=actor,
        changes=list(changes),
        **extra,
    )


NETWORK_EVALUATION = (
    "an [evaluation] section is not accepted in a prompt defined over the network: "
    "online evaluation runs on the learner for the prompt files it loads (prompts.dir), "
    "and evaluators such as 'python' would run code there; put the prompt in a file"
)
"""Why a prompt defined through ``/admin`` (or arriving on the bus) has no ``[evaluation]``."""


def spec_from_event(event: PromptRegistered) -> PromptSpec:
    """The prompt ``event`` carries, validated like any new one (pydantic's
    ``ValidationError`` when this version of promptlab refuses it). A prompt that
    arrives over the bus cannot carry an ``[evaluation]`` section (:class:`SpecError`,
    :data:`NETWORK_EVALUATION`), whoever wrote it there."""
    if isinstance(event.spec, dict) and event.spec.get("evaluation") is not None:
        raise SpecError([("evaluation", NETWORK_EVALUATION)])
    return PromptSpec.model_validate(event.spec)


_PROMPT_KEYS = tuple(k for k in PromptSpec.model_fields if k not in ("id", "variants"))
"""The prompt-level keys compared by :func:`compare_prompts`."""


@dataclass(frozen=True, slots=True)
class PromptChanges:
    """What a new definition of a prompt changes against the current one."""

    fields: tuple[str, ...] = ()
    """Prompt-level keys whose value differs (``reward``, ``routing``, ``variables``...)."""
    added: tuple[str, ...] = ()
    """Variants that are new."""
    new_versions: tuple[tuple[str, str, str], ...] = ()
    """``(variant, old version, new version)``: same name, other content."""
    unchanged: tuple[str, ...] = ()
    """Variants with the same version as now."""
    absent: tuple[str, ...] = ()
    """Current variants the new definition does not name (kept: variants are never
    deleted, they are archived)."""

    @property
    def changed(self) -> bool:
        return bool(self.fields or self.added or self.new_versions)

    def words(self) -> list[str]:
        """The changes, one short sentence each (for events, logs and answers)."""
        out = [f"{field} changed" for field in self.fields]
        out += [f"variant {name} added" for name in self.added]
        out += [
            f"variant {name}: new version {new} (was {old})" for name, old, new in self.new_versions
        ]
        return out

    def to_dict(self) -> JsonDict:
        return {
            "fields": list(self.fields),
            "added": list(self.added),
            "new_versions": [
                {"variant": name, "from": old, "to": new} for name, old, new in self.new_versions
            ],
            "unchanged": list(self.unchanged),
            "kept": list(self.absent),
        }


def compare_prompts(current: PromptSpec | None, new: PromptSpec) -> PromptChanges:
    """What replacing ``current`` (None: no such prompt yet) by ``new`` changes."""
    if current is None:
        return PromptChanges(added=tuple(v.name for v in new.variants))
    old_data = current.model_dump(mode="json", include=set(_PROMPT_KEYS))
    new_data = new.model_dump(mode="json", include=set(_PROMPT_KEYS))
    fields = tuple(k for k in _PROMPT_KEYS if old_data.get(k) != new_data.get(k))
    known = {v.name: v for v in current.variants}
    added, versions, unchanged = [], [], []
    for variant in new.variants:
        before = known.get(variant.name)
        if before is None:
            added.append(variant.name)
        elif before.version != variant.version:
            versions.append((variant.name, before.version, variant.version))
        else:
            unchanged.append(variant.name)
    named = {v.name for v in new.variants}
    absent = tuple(v.name for v in current.variants if v.name not in named)
    return PromptChanges(fields, tuple(added), tuple(versions), tuple(unchanged), absent)
