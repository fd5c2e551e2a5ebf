"""One exception root per core package: callers catch ``PromptError`` or ``EventsError``
and know they have every failure of that package."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

ROOTS = {
    "promptlab.events": "promptlab.events.errors.EventsError",
    "promptlab.prompts": "promptlab.prompts.errors.PromptError",
}


def exceptions_defined_in(package: str) -> list[type[BaseException]]:
    root = importlib.import_module(package)
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
        module = importlib.import_module(info.name)
        found += [
            cls
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseException) and cls.__module__ == info.name
        ]
    return found


@pytest.mark.parametrize("package", sorted(ROOTS))
def test_every_exception_of_the_package_derives_from_its_root(package: str) -> None:
    module, _, name = ROOTS[package].rpartition(".")
    root = getattr(importlib.import_module(module), name)
    found = exceptions_defined_in(package)
    assert root in found
    strays = sorted(f"{c.__module__}.{c.__qualname__}" for c in found if not issubclass(c, root))
    assert strays == [], f"derive these from {ROOTS[package]}"
