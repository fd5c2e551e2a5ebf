"""One import namespace: every module of ours is ``promptlab.<package>``.

The repository keeps its top-level folders (events/, sidecar/, ...) and promptlab/events,
promptlab/sidecar, ... link to them. Inside the checkout the bare names are still
importable (pytest puts the root on sys.path), so a bare ``import sidecar`` would load a
second copy of every module; this test finds one before the wheel does.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("events", "prompts", "providers", "sidecar", "learner", "lab", "tui")
SCANNED = (*PACKAGES, "promptlab", "tests", "bench")


def bare_imports(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.split(".")[0] in PACKAGES]
    return found


def test_the_check_sees_a_bare_import() -> None:
    assert bare_imports("import os\nfrom sidecar.app import x\nimport promptlab.lab\n") == [
        (2, "sidecar.app")
    ]


def test_no_module_imports_a_bare_package_name() -> None:
    offenders = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if any(part.startswith(".") for part in path.relative_to(ROOT).parts):
                continue
            for line, name in bare_imports(path.read_text(encoding="utf-8")):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert offenders == [], "import these as promptlab.<name>: " + "; ".join(offenders)


def test_the_namespace_links_point_at_the_top_level_folders() -> None:
    for name in (*PACKAGES, "config"):
        link = ROOT / "promptlab" / name
        assert link.is_symlink() and link.resolve() == (ROOT / name).resolve(), name
