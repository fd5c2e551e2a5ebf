"""``serve`` with NATS unreachable: one warning per outage and one per recovery, with
the real cause and the true retry interval, not one line per watch per second."""

from __future__ import annotations

import re
import time
from pathlib import Path

from polling import until_sync
from serving import GREET_CALL, GREET_PROMPT, Serve, write_config

from promptlab.events.embedded import NatsServerProcess, free_port


def warnings(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if " WARNING " in line]


def test_an_unreachable_nats_is_one_warning_with_its_cause_and_one_on_recovery(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = write_config(tmp_path, {"greet": GREET_PROMPT}, nats_url=f"nats://127.0.0.1:{port}")
    log = tmp_path / "serve.log"
    nats = NatsServerProcess(tmp_path / "nats-store", port=port)
    with Serve(config, log) as served:
        served.post_json("/v1/chat/completions", GREET_CALL)  # calls work meanwhile (outbox)
        down = [w for w in warnings(log) if "NATS" in w]
        assert len(down) == 1, warnings(log)
        assert "connection refused" in down[0] and "TimeoutError" not in down[0]
        assert "retrying every 2s" in down[0]
        # Five watches, the learner and the publisher retry all along: still one line.
        time.sleep(3.5)  # the span of an outage, not a wait for a condition
        assert len(warnings(log)) == len([w for w in warnings(log) if "prompt directory" in w]) + 1

        nats.start()
        try:
            until_sync(lambda: any("answers again" in w for w in warnings(log)), 10, "recovery")
            [back] = [w for w in warnings(log) if "answers again" in w]
            assert f"NATS at nats://127.0.0.1:{port} answers again after" in back

            before = len(warnings(log))
            nats.stop()  # an outage after the connection was up
            until_sync(lambda: len(warnings(log)) > before, 10, "the disconnection line")
            time.sleep(2.5)  # watches fail every second while it lasts
            nats.start()
            until_sync(lambda: any("reconnected" in w for w in warnings(log)), 15, "reconnection")
            time.sleep(1.5)  # the watches resume: nothing more to say
            later = warnings(log)[before:]
            assert served.terminate() == 0
        finally:
            nats.stop()
    said = [re.sub(r"^.*? WARNING [\w.]+: ", "", w) for w in later]
    assert len(said) == 2, later
    assert said[0].startswith(f"NATS disconnected from nats://127.0.0.1:{port}; reconnecting")
    assert said[1].startswith(f"NATS reconnected to nats://127.0.0.1:{port} after")
    assert not [w for w in warnings(log) if "watch interrupted" in w]
