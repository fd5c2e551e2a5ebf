"""`promptlab demo`, as a newcomer runs it: a fresh process, twice in a row, any directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
    return subprocess.run(
        [sys.executable, "-m", "promptlab", "demo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def test_demo_promotes_the_truly_better_variant_twice_in_a_row(tmp_path: Path) -> None:
    for run in range(2):  # the second run finds the first run's data dir
        result = _demo(tmp_path, "--json", "--seed", "4")
        assert result.returncode == 0, result.stderr[-2000:]
        summary = json.loads(result.stdout)
        assert summary["label"].startswith("simulated application"), run
        assert summary["errors"] == 0
        assert summary["promoted_truly_best"] is True, summary
        promoted = [d for d in summary["decisions"] if d["type"] == "promoted"]
        assert promoted and promoted[0]["variant"] == summary["truly_best"]
        assert promoted[0]["evidence"]["p_value"] <= 0.05
        assert summary["reward_per_call"] > summary["equal_split_reward_per_call"]
        # Continuous breeding is on in the demo: a bred variant entered live traffic.
        assert any(b["entered_traffic"] and b["calls"] > 0 for b in summary["bred"]), summary
    assert (tmp_path / ".promptlab" / "demo" / "promptlab.db").is_file()


def test_headless_demo_prints_progress_and_summary(tmp_path: Path) -> None:
    result = _demo(tmp_path, "--headless", "--requests", "400", "--seed", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "simulated application" in out
    assert "[  400/400]" in out
    assert "summary (" in out and "reward per call" in out
