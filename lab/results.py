"""Trials and the JSONL file they are appended to as they finish.

The first line describes the experiment (its spec and cases), every later line is one
:class:`Trial`. Each line is flushed when written, so an interrupted run keeps every
finished trial, and ``--resume`` skips them. ``experiment show`` rebuilds a report
from the file alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

HEADER = "experiment"


@dataclass(slots=True)
class Trial:
    """One real call of one (variant, model, params) point on one case, and its scores."""

    point: str
    """The point's label: ``variant @ model`` (plus params when searched)."""
    variant: str
    version: str
    model: str
    params: dict[str, Any]
    case: str
    repeat: int
    execution_id: str
    status: Literal["ok", "error"] = "ok"
    error_kind: str | None = None
    output: str = ""
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    """The model call's cost (evaluation cost is ``eval_cost_usd``)."""
    quality: float | None = None
    """Weighted evaluator score; None for a failed call or an evaluation error."""
    min_quality: float = 0.5
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Evaluator name -> ``{"score", "reason"[, "error"]}``."""
    eval_errors: list[str] = field(default_factory=list)
    eval_cost_usd: float = 0.0
    eval_calls: int = 0

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.point, self.case, self.repeat)

    @property
    def calls(self) -> int:
        return 1 + self.eval_calls

    @property
    def spend_usd(self) -> float:
        return self.cost_usd + self.eval_cost_usd

    @property
    def success(self) -> bool | None:
        return None if self.quality is None else self.quality >= self.min_quality - 1e-12

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trial:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class ResultsFile:
    """Appends trials to a JSONL file; reads it back for ``--resume`` and ``show``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._handle: IO[str] | None = None

    def open(self, header: dict[str, Any], *, resume: bool) -> list[Trial]:
        """Start writing; with ``resume`` keep (and return) the trials already there."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[Trial] = []
        if resume and self.path.exists():
            _, kept = read(self.path)
            self._handle = self.path.open("a", encoding="utf-8")
            return kept
        self._handle = self.path.open("w", encoding="utf-8")
        self._write({"type": HEADER, **header})
        return kept

    def append(self, trial: Trial) -> None:
        self._write({"type": "trial", **trial.to_json()})

    def _write(self, data: dict[str, Any]) -> None:
        assert self._handle is not None, "open() first"
        self._handle.write(json.dumps(data, ensure_ascii=False) + "\n")
        self._handle.flush()

    def finish(self, *, stopped_by_budget: bool) -> None:
        """Record how the run ended (a run cut short by Ctrl-C or a kill has no end line)."""
        self._write({"type": "end", "stopped_by_budget": stopped_by_budget})

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[Trial]]:
    """The header and the trials of a results file (a torn last line is skipped).

    The header gains ``stopped_by_budget`` from the last run's end line, when it has one.
    """
    header: dict[str, Any] = {}
    trials: dict[tuple[str, str, int], Trial] = {}
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            try:
                data = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill: that trial runs again on resume
            if data.get("type") == HEADER:
                header = data
            elif data.get("type") == "end":
                header["stopped_by_budget"] = bool(data.get("stopped_by_budget"))
            elif data.get("type") == "trial":
                trial = Trial.from_json(data)
                trials[trial.key] = trial
    return header, list(trials.values())


def spend(trials: Iterable[Trial]) -> tuple[int, float]:
    """Calls made and USD spent by ``trials`` (evaluation included)."""
    calls = 0
    usd = 0.0
    for t in trials:
        calls += t.calls
        usd += t.spend_usd
    return calls, usd
