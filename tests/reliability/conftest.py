"""Fixtures of the reliability suite, and the table ``make reliability`` prints.

* ``nats`` — this test's own nats-server with JetStream (restartable, pausable).
* ``upstream`` / ``other_host`` — two fake OpenAI-compatible upstreams on loopback: the
  configured one, and one nobody configured, which must count zero hits.
* ``spawn`` — starts :class:`procs.Serve` children, killed after the test.
* ``figures`` — a case records its figures (``calls``, ``answered``, ``lost``,
  ``duplicated``, ``other_host_hits``, ``canary``...); the terminal summary prints one
  row per case: case, outcome, figures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_upstream import FakeUpstream
from procs import Serve, Stack, write_config

from promptlab.events.embedded import NatsServerProcess

_ROWS: list[tuple[str, str, dict[str, Any]]] = []


@pytest.fixture
def nats(nats_server: NatsServerProcess) -> NatsServerProcess:
    """The suite's name for tests/conftest.py's ``nats_server`` (one per test)."""
    return nats_server


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def other_host() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []

    def make(*args: Any, **kwargs: Any) -> Serve:
        serve = Serve(*args, **kwargs)
        started.append(serve)
        return serve

    yield make
    for serve in started:
        serve.kill()


@pytest.fixture(autouse=True)
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The figures of this case, for the reliability table."""
    found: dict[str, Any] = {}
    request.node.user_properties.append(("reliability", found))
    return found


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    props = dict(report.user_properties).get("reliability")
    if props is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        if hasattr(report, "wasxfail"):
            outcome = "xfail (" + str(report.wasxfail).removeprefix("reason: ")[:60] + ")"
        else:
            outcome = report.outcome
        case = report.nodeid.split("::", 1)[-1]
        _ROWS.append((case, outcome, props))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _ROWS:
        return
    terminalreporter.write_sep("=", "reliability")
    terminalreporter.write_line(render_table(_ROWS))


def render_table(rows: list[tuple[str, str, dict[str, Any]]]) -> str:
    lines = ["| case | outcome | figures |", "|---|---|---|"]
    for case, outcome, props in rows:
        text = ", ".join(f"{k} {v}" for k, v in props.items()) or "-"
        lines.append(f"| {case} | {outcome} | {text} |")
    return "\n".join(lines)


@pytest.fixture
def stack(
    tmp_path: Path,
    nats: NatsServerProcess,
    upstream: FakeUpstream,
    spawn: Callable[..., Serve],
) -> Callable[..., Stack]:
    """``stack(extra_toml="", learner=False, env=None)``: a started sidecar."""

    def make(extra: str = "", *, learner: bool = False, env: dict[str, str] | None = None) -> Stack:
        config = write_config(
            tmp_path / "sidecar", nats_url=nats.url, upstream_base=upstream.base_url, extra=extra
        )
        serve = spawn(config, tmp_path / "sidecar.log", learner=learner, env=env)
        return Stack(tmp_path, nats, upstream, serve)

    return make
