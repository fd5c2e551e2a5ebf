"""The layering of DESIGN.md holds: import-linter contracts and lazy heavy imports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    )
    names = out.stdout.split()
    # third-party packages by top-level name, ours by sub-package (promptlab.sidecar, ...)
    return {
        ".".join(n.split(".")[:2]) if n.startswith("promptlab.") else n.split(".")[0] for n in names
    }


def test_import_contracts_are_kept() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is not installed in this environment (pip install -e '.[dev]')")
    result = subprocess.run([lint], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_learner_loads_neither_textual_nor_aiohttp() -> None:
    loaded = _loaded_after("import promptlab.learner, promptlab.learner.config")
    assert "textual" not in loaded
    assert "aiohttp" not in loaded


def test_sidecar_does_not_load_litellm_or_textual() -> None:
    loaded = _loaded_after("import promptlab.sidecar, promptlab.sidecar.config")
    assert "litellm" not in loaded
    assert "textual" not in loaded


def test_events_and_prompts_load_no_other_package_of_ours() -> None:
    loaded = _loaded_after("import promptlab.events, promptlab.prompts")
    assert not loaded & {
        "promptlab.sidecar",
        "promptlab.learner",
        "promptlab.lab",
        "promptlab.tui",
        "promptlab.providers",
        "textual",
        "litellm",
    }
