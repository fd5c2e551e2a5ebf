"""``import providers`` stays light: no aiohttp until a client is used, never litellm
until a provider that needs it is called."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    names = out.stdout.split()
    # third-party packages by top-level name, ours by sub-package (promptlab.sidecar, ...)
    return {
        ".".join(n.split(".")[:2]) if n.startswith("promptlab.") else n.split(".")[0] for n in names
    }


def test_settings_and_errors_load_without_aiohttp() -> None:
    loaded = loaded_after(
        "import promptlab.providers as providers; providers.ProviderSettings; providers.ProviderError"
    )
    assert "aiohttp" not in loaded and "litellm" not in loaded


def test_the_client_loads_aiohttp_but_not_litellm() -> None:
    loaded = loaded_after("from promptlab.providers import Providers")
    assert "aiohttp" in loaded and "litellm" not in loaded
    assert not loaded & {
        "promptlab.events",
        "promptlab.prompts",
        "promptlab.sidecar",
        "promptlab.learner",
        "promptlab.lab",
        "promptlab.tui",
    }
