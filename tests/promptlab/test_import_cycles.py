"""No import cycles, at module level, in any package of ours (grimp's import graph).

import-linter's ``acyclic_siblings`` contract (``make check``) looks at siblings; this
test looks at every module, TYPE_CHECKING imports and imports inside functions
included, so a cycle hidden behind a lazy import is found too.
"""

from __future__ import annotations

import grimp

PACKAGES = ("promptlab",)

# Cycles that another branch removes; each must still exist (so that the entry is
# deleted as soon as it is fixed), like a strict xfail.
KNOWN: set[frozenset[str]] = set()
"""Known cycles still to remove (the learner restructure of branch stats removed the last)."""


def cycles(graph: grimp.ImportGraph) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_the_cycle_finder_finds_a_cycle(tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "cyclic"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclic import b\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cyclic import a\n"
    )
    (pkg / "c.py").write_text("from cyclic import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cycles(grimp.build_graph("cyclic")) == [frozenset({"cyclic.a", "cyclic.b"})]


def test_no_package_of_ours_has_an_import_cycle() -> None:
    found = set(cycles(grimp.build_graph(*PACKAGES)))
    assert found - KNOWN == set(), "import cycles: " + "; ".join(
        " <-> ".join(sorted(c)) for c in found - KNOWN
    )
    assert KNOWN - found == set(), f"fixed, delete from KNOWN: {KNOWN - found}"
