"""``promptlab serve`` runs its learner in a child process: it projects the calls, stops
with ``serve`` on SIGTERM, and does not outlive a ``serve`` that was killed."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

from polling import until_sync
from serving import GREET_CALL, GREET_PROMPT, Serve, learner_children, write_config


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" not in status.read_text().lower()
    except OSError:
        return False


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _executions(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("select count(*) from executions").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:  # not created yet
        return 0


def test_learner_child_projects_calls_and_stops_with_serve(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, {"greet": GREET_PROMPT}, extra="[learner]\nsnapshot_interval_ms = 100\n"
    )
    with Serve(config) as served:
        until_sync(lambda: bool(learner_children(served.pid)), 30, "a learner child process")
        (learner,) = learner_children(served.pid)
        # Calls first: the learner runs at learner.serve_nice (10) above serve.
        expected = min(19, _nice(served.pid) + 10)
        until_sync(lambda: _nice(learner) == expected, 30, "the learner's nice value")
        for _ in range(5):
            served.post_json("/v1/chat/completions", GREET_CALL)
        until_sync(lambda: _executions(tmp_path / "promptlab.db") == 5, 60, "5 projected calls")
        assert served.terminate() == 0, served.log_text()[-3000:]
        assert not _alive(learner)


def test_learner_child_stops_when_serve_is_killed(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"greet": GREET_PROMPT})
    with Serve(config) as served:
        until_sync(lambda: bool(learner_children(served.pid)), 30, "a learner child process")
        (learner,) = learner_children(served.pid)
        os.kill(served.pid, signal.SIGKILL)  # serve only: its learner must notice alone
        served.proc.wait()
        try:
            until_sync(lambda: not _alive(learner), 30, "the orphaned learner to exit")
        finally:
            if _alive(learner):
                os.kill(learner, signal.SIGKILL)
            served.kill()  # stops the embedded nats-server
