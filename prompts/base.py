"""Base of the prompt models: frozen, strict, and errors that say where they are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class SpecError(ValueError):
    """One or more rule violations; ``problems`` holds ``(field, message)`` pairs.

    ``field`` is relative to the model that raised (``""`` for the value itself), so the
    loader can prefix it with the location pydantic reports.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in problems))


class SpecModel(BaseModel):
    """Base of every prompt model: frozen, and unknown keys are errors."""

    # extra="forbid": a misspelt key in a prompt file is an error, not silently ignored.
    model_config = ConfigDict(frozen=True, extra="forbid")

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied, validated like a new spec.

        Unlike pydantic's default, an update runs every rule again (a spec is never
        invalid) and derived values cached on the instance (``version``, ``champion``)
        are computed afresh instead of being copied from the original.
        """
        if not update:
            return self
        return self.model_validate({**self.model_dump(), **update})
