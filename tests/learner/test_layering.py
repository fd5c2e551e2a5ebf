"""The learner stays below the sidecar and the TUI: importing it loads neither (no import
cycle anywhere: tests/promptlab/test_import_cycles.py)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_import_learner_loads_no_aiohttp_textual_or_litellm() -> None:
    code = (
        "import json, sys\n"
        "import promptlab.learner, promptlab.learner.service, promptlab.learner.projection.transaction\n"
        "import promptlab.learner.replay, promptlab.learner.storage.periods\n"
        "names = ('aiohttp', 'textual', 'litellm', 'promptlab.sidecar', 'promptlab.tui')\n"
        "print(json.dumps(sorted(m for m in names if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
