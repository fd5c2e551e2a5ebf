"""Write a benchmark's figures as JSON under ``bench/results/`` for the docs to render.

``docs/benchmarks.md`` shows the tables that ``docs/hooks/reference.py`` builds from
these files, so a figure is written once, by the bench that measured it. Each file says
when and on what it was measured; rerun the bench with ``--out`` to refresh it.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, or ``?`` where the system has none."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine(load_before: str) -> str:
    """When and on what: the UTC date, the cores and the load before and after."""
    return (
        f"{time.strftime('%Y-%m-%d', time.gmtime())} on {os.cpu_count()} cores "
        f"(load average {load_before} before, {loadavg()} after)"
    )


def write(
    path: str | os.PathLike[str],
    module: str,
    argv: list[str],
    data: dict[str, Any],
    load_before: str,
) -> Path:
    """Write ``data`` with ``measured_on`` and the command that produced it (``python -m
    module argv``, without ``--out``); return the path."""
    out = Path(path)
    shown = [a for i, a in enumerate(argv) if a != "--out" and (i == 0 or argv[i - 1] != "--out")]
    record = {
        "measured_on": machine(load_before),
        "command": shlex.join(["python", "-m", module, *shown]),
        **data,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out
