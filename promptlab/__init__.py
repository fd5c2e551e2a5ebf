"""promptlab: the composition root (CLI, settings, wiring) and the Python API.

``from promptlab import Lab, TestCase`` loads the lab on first use only, so
``import promptlab`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promptlab.api import Lab, TestCase

__all__ = ["Lab", "TestCase"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from promptlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'promptlab' has no attribute {name!r}")
