"""Base of the prompt models: frozen, strict, and errors that say where they are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from promptlab.prompts.errors import SpecError

__all__ = ["SpecError", "SpecModel"]


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
