"""JSON on the hot path (the providers package's codec, shared)."""

from __future__ import annotations

from providers.codec import dumps, loads

__all__ = ["dumps", "loads"]
