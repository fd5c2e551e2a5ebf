"""The learner stays below the sidecar and the TUI (importing it loads neither) and has no
import cycle inside it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grimp
import pytest


def test_import_learner_loads_no_aiohttp_textual_or_litellm() -> None:
    code = (
        "import json, sys\n"
        "import learner, learner.service, learner.projection.transaction, learner.replay, learner.storage.analytics\n"
        "print(json.dumps(sorted(m for m in ('aiohttp', 'textual', 'litellm', 'sidecar', 'tui') if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def _cycles(package: str) -> list[list[str]]:
    """Strongly connected components (size > 1) of the package's module import graph,
    TYPE_CHECKING imports included (a cycle there is still two ideas leaning on each other)."""
    graph = grimp.build_graph(package)
    modules = sorted(graph.find_children(package) | graph.find_descendants(package))
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & set(modules)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(m: str) -> None:  # Tarjan; the learner is small enough to recurse
        index[m] = low[m] = len(index)
        stack.append(m)
        on_stack.add(m)
        for n in edges[m]:
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in on_stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            component = []
            while True:
                n = stack.pop()
                on_stack.discard(n)
                component.append(n)
                if n == m:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for m in modules:
        if m not in index:
            visit(m)
    return found


def test_learner_has_no_import_cycle() -> None:
    assert _cycles("learner") == []


def test_the_cycle_finder_finds_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "cyclic_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclic_pkg import b\n")
    (pkg / "b.py").write_text("from cyclic_pkg import a\n")
    (pkg / "c.py").write_text("from cyclic_pkg import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _cycles("cyclic_pkg") == [["cyclic_pkg.a", "cyclic_pkg.b"]]
