"""Prometheus metrics of the sidecar, on prometheus_client.

Per call (labels ``prompt``, ``variant``; empty for unrouted calls):
``promptlab_calls_total{status}``, ``promptlab_errors_total{kind}``,
``promptlab_latency_seconds`` (histogram), ``promptlab_tokens_total{direction}``,
``promptlab_cost_usd_total``. The labelled children are cached, so a call costs a
dict lookup and a few adds.

Operations, sampled every second and on each scrape (:meth:`Metrics.sample`):
``promptlab_event_queue_depth{worker}`` (events waiting in memory),
``promptlab_outbox_events{worker}`` (events on disk waiting for NATS),
``promptlab_publish_failures_total{worker}`` (batches NATS did not take),
``promptlab_events_spilled_total{worker}``, ``promptlab_events_dropped_total{worker}``,
``promptlab_learner_lag_events`` (events in the stream the learner has not applied:
its durable's undelivered plus unacknowledged messages) and
``promptlab_dead_letters`` (messages on the dead-letter subject).

Demonstrations: ``promptlab_demo_fallbacks_total{cause}``, calls of variants that
retrieve by embeddings which retrieved by BM25 instead (``timeout``,
``pool_without_vectors``, a provider error's kind, ...).

Feedback: ``promptlab_feedback_total{status}`` (this sidecar's answers: accepted,
pending, rejected) and ``promptlab_learner_counter{name}`` (the active learner's
counters from its status in KV: dead_letters, feedback_dropped, feedback_rejected,
feedback_replaced, feedback_ignored, fallback_failures, evaluation_errors,
evaluation_errors_offline).

Workers (``serve --workers N``): the parent sets ``PROMETHEUS_MULTIPROC_DIR`` for its
workers, each writes its values there, and ``/metrics`` on any worker reads all of
them: call counters and histograms are summed over workers, per-worker gauges keep
their ``worker`` label, and stream-wide gauges (learner lag, dead letters) show the
largest value any worker sampled. Without the variable, one process, one registry
per app (two apps in a test do not share counts).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from promptlab.events.bus import StreamStats
from promptlab.events.subjects import Subject

log = logging.getLogger(__name__)

# `_created` series double the output and say nothing an operator uses.
disable_created_metrics()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
WORKER_ENV = "PROMPTLAB_WORKER"
"""Index of this worker under ``serve --workers``; "0" for a single process."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS_MS = (
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
    30000.0,
    60000.0,
)

_CALL = ("prompt", "variant")


def multiprocess_env() -> tuple[dict[str, str], Path]:
    """A fresh metrics directory for a supervisor's workers and the env that names it."""
    path = Path(tempfile.mkdtemp(prefix="promptlab-metrics-"))
    return {MULTIPROC_ENV: str(path)}, path


def remove_multiprocess_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class _Series:
    """The labelled children of one (prompt, variant), created on first use."""

    __slots__ = ("calls", "cost", "errors", "input_tokens", "latency", "output_tokens")

    def __init__(self, metrics: Metrics, prompt: str, variant: str) -> None:
        self.calls: dict[str, Any] = {}
        self.errors: dict[str, Any] = {}
        self.latency = metrics.latency.labels(prompt, variant)
        self.input_tokens = metrics.tokens.labels(prompt, variant, "input")
        self.output_tokens = metrics.tokens.labels(prompt, variant, "output")
        self.cost = metrics.cost.labels(prompt, variant)


class Metrics:
    """The metrics of one sidecar app."""

    def __init__(self, *, worker: str | None = None, durable: str = "promptlab-learner") -> None:
        self.worker = worker if worker is not None else os.environ.get(WORKER_ENV, "0")
        self.durable = durable
        """The learner's durable consumer, whose backlog is the learner lag."""
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        if self.multiprocess:
            MultiProcessCollector(self.registry)
        # In multiprocess mode values live in files that the collector reads; the
        # metric objects then belong to no registry.
        reg: CollectorRegistry | None = None if self.multiprocess else self.registry
        self.calls = Counter(
            "promptlab_calls", "Chat completion calls by outcome.", [*_CALL, "status"], registry=reg
        )
        self.errors = Counter(
            "promptlab_errors", "Failed calls by kind of error.", [*_CALL, "kind"], registry=reg
        )
        self.latency = Histogram(
            "promptlab_latency_seconds",
            "Call latency seen by the client.",
            _CALL,
            buckets=[b / 1000.0 for b in LATENCY_BUCKETS_MS],
            registry=reg,
        )
        self.tokens = Counter(
            "promptlab_tokens", "Tokens by direction.", [*_CALL, "direction"], registry=reg
        )
        self.cost = Counter("promptlab_cost_usd", "Estimated cost in USD.", _CALL, registry=reg)
        per_worker: dict[str, Any] = {"labelnames": ["worker"], "registry": reg}
        self.queue_depth = Gauge(
            "promptlab_event_queue_depth",
            "Events waiting in memory to be published.",
            multiprocess_mode="livesum",
            **per_worker,
        ).labels(self.worker)
        self.outbox = Gauge(
            "promptlab_outbox_events",
            "Events on disk waiting for NATS.",
            multiprocess_mode="livesum",
            **per_worker,
        ).labels(self.worker)
        self._totals = {
            "publish_failures": Counter(
                "promptlab_publish_failures", "Event batches NATS did not take.", **per_worker
            ).labels(self.worker),
            "spilled_to_outbox": Counter(
                "promptlab_events_spilled", "Events written to the outbox.", **per_worker
            ).labels(self.worker),
            "dropped": Counter(
                "promptlab_events_dropped", "Events lost (the outbox failed too).", **per_worker
            ).labels(self.worker),
        }
        self._seen: dict[str, float] = dict.fromkeys(self._totals, 0.0)
        self.learner_lag = Gauge(
            "promptlab_learner_lag_events",
            "Events in the stream the learner has not applied yet (-1: no learner consumer).",
            multiprocess_mode="max",
            registry=reg,
        )
        self.dead_letters = Gauge(
            "promptlab_dead_letters",
            "Messages on the dead-letter subject of the stream.",
            multiprocess_mode="max",
            registry=reg,
        )
        self.feedback_answers = Counter(
            "promptlab_feedback", "Feedback received by this sidecar, by answer.", ["status"],
            registry=reg,
        )  # fmt: skip
        self.learner_counters = Gauge(
            "promptlab_learner_counter",
            "Counters of the active learner (feedback dropped after the wait, dead letters...).",
            ["name"],
            multiprocess_mode="max",
            registry=reg,
        )
        self.demo_fallbacks = Counter(
            "promptlab_demo_fallbacks",
            "Calls of variants that retrieve demonstrations by embeddings which retrieved "
            "by BM25 instead, by cause.",
            ["cause"],
            registry=reg,
        )
        self._series: dict[tuple[str, str], _Series] = {}

    def demo_fallback(self, cause: str) -> None:
        """Count one call that retrieved its demonstrations by BM25 instead of embeddings."""
        self.demo_fallbacks.labels(cause).inc()

    def feedback(self, status: str) -> None:
        """Count one ``/v1/feedback`` answer: accepted, pending or rejected."""
        self.feedback_answers.labels(status).inc()

    def learner(self, counters: dict[str, int]) -> None:
        """The active learner's counters, from its status."""
        for name, value in counters.items():
            self.learner_counters.labels(name).set(value)

    # ------------------------------------------------------------------ hot path

    def observe(
        self,
        prompt: str | None,
        variant: str | None,
        status: str,
        latency_ms: float,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float = 0.0,
        error_kind: str | None = None,
    ) -> None:
        """Count one finished call."""
        key = (prompt or "", variant or "")
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self, *key)
        calls = series.calls.get(status)
        if calls is None:
            calls = series.calls[status] = self.calls.labels(*key, status)
        calls.inc()
        if error_kind is not None:
            errors = series.errors.get(error_kind)
            if errors is None:
                errors = series.errors[error_kind] = self.errors.labels(*key, error_kind)
            errors.inc()
        series.latency.observe(latency_ms / 1000.0)
        if input_tokens:
            series.input_tokens.inc(input_tokens)
        if output_tokens:
            series.output_tokens.inc(output_tokens)
        if cost_usd:
            series.cost.inc(cost_usd)

    # ------------------------------------------------------------------ operations

    async def sample(self, publisher: Any, bus: Any | None) -> None:
        """Read the publisher's state and the stream's backlog into the gauges."""
        self.queue_depth.set(getattr(publisher, "queue_depth", 0))
        self.outbox.set(getattr(publisher, "outbox_pending", 0))
        for name, counter in self._totals.items():
            total = float(getattr(publisher, name, 0) or 0)
            if total > self._seen[name]:
                counter.inc(total - self._seen[name])
                self._seen[name] = total
        if isinstance(bus, StreamStats) and getattr(bus, "connected", False):
            try:
                pending = await bus.consumer_pending(self.durable)
                self.learner_lag.set(-1 if pending is None else pending)
                self.dead_letters.set(await bus.subject_count(Subject.DEAD_LETTER.value))
            except Exception as exc:  # NATS away: keep the last values
                log.debug("stream metrics not sampled: %s", exc)

    def render(self) -> bytes:
        """The Prometheus text exposition format."""
        return generate_latest(self.registry)

    def close(self) -> None:
        """Forget this worker's live gauges (multiprocess mode), e.g. at shutdown."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            with contextlib.suppress(Exception):
                multiprocess.mark_process_dead(os.getpid())
