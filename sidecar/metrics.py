"""Prometheus metrics, hand-rolled: a few counters and one histogram per prompt/variant.

A dict lookup and some integer adds per call; the text format is produced only when
``GET /metrics`` asks. Labels: ``prompt`` and ``variant`` (empty for unrouted calls),
``status`` (ok, error, cancelled) on the call counter.
"""

from __future__ import annotations

from bisect import bisect_left

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


class _Series:
    __slots__ = (
        "buckets",
        "calls",
        "cost",
        "errors",
        "input_tokens",
        "latency_sum",
        "output_tokens",
    )

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self.latency_sum = 0.0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters of one sidecar process."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], _Series] = {}
        self._feedback: dict[str, int] = {}
        self.learner: dict[str, int] = {}
        """The learner's counters from its status in KV (dead letters, feedback dropped...)."""

    def feedback(self, status: str) -> None:
        """Count one ``/v1/feedback`` answer: accepted, pending or rejected."""
        self._feedback[status] = self._feedback.get(status, 0) + 1

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
            series = self._series[key] = _Series()
        series.calls[status] = series.calls.get(status, 0) + 1
        if error_kind is not None:
            series.errors[error_kind] = series.errors.get(error_kind, 0) + 1
        series.buckets[bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
        series.latency_sum += latency_ms / 1000.0
        series.input_tokens += input_tokens
        series.output_tokens += output_tokens
        series.cost += cost_usd

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        out = [
            "# HELP promptlab_calls_total Chat completion calls by outcome.",
            "# TYPE promptlab_calls_total counter",
        ]
        # Label text of each series, escaped once for every metric family below.
        items = [
            (f'prompt="{_escape(prompt)}",variant="{_escape(variant)}"', s)
            for (prompt, variant), s in sorted(self._series.items())
        ]
        for labels, s in items:
            for status, n in sorted(s.calls.items()):
                out.append(f'promptlab_calls_total{{{labels},status="{status}"}} {n}')
        out += [
            "# HELP promptlab_errors_total Failed calls by kind of error.",
            "# TYPE promptlab_errors_total counter",
        ]
        for labels, s in items:
            for kind, n in sorted(s.errors.items()):
                out.append(f'promptlab_errors_total{{{labels},kind="{_escape(kind)}"}} {n}')
        out += [
            "# HELP promptlab_latency_seconds Call latency seen by the client.",
            "# TYPE promptlab_latency_seconds histogram",
        ]
        for labels, s in items:
            acc = 0
            for bound, n in zip(LATENCY_BUCKETS_MS, s.buckets, strict=False):
                acc += n
                out.append(
                    f'promptlab_latency_seconds_bucket{{{labels},le="{bound / 1000:g}"}} {acc}'
                )
            acc += s.buckets[-1]
            out.append(f'promptlab_latency_seconds_bucket{{{labels},le="+Inf"}} {acc}')
            out.append(f"promptlab_latency_seconds_sum{{{labels}}} {s.latency_sum:.6f}")
            out.append(f"promptlab_latency_seconds_count{{{labels}}} {acc}")
        out += [
            "# HELP promptlab_tokens_total Tokens by direction.",
            "# TYPE promptlab_tokens_total counter",
        ]
        for labels, s in items:
            out.append(f'promptlab_tokens_total{{{labels},direction="input"}} {s.input_tokens}')
            out.append(f'promptlab_tokens_total{{{labels},direction="output"}} {s.output_tokens}')
        out += [
            "# HELP promptlab_cost_usd_total Estimated cost in USD.",
            "# TYPE promptlab_cost_usd_total counter",
        ]
        for labels, s in items:
            out.append(f"promptlab_cost_usd_total{{{labels}}} {s.cost:.8f}")
        out += [
            "# HELP promptlab_feedback_total Feedback received by this sidecar, by answer.",
            "# TYPE promptlab_feedback_total counter",
        ]
        for status, n in sorted(self._feedback.items()):
            out.append(f'promptlab_feedback_total{{status="{_escape(status)}"}} {n}')
        for name, value in sorted(self.learner.items()):
            metric = f"promptlab_learner_{name}_total"
            out += [
                f"# HELP {metric} Learner counter {name} (from the active learner's status).",
                f"# TYPE {metric} counter",
                f"{metric} {value}",
            ]
        return "\n".join(out) + "\n"
