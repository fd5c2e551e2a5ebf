"""OpenTelemetry spans of each call: route, render, upstream, publish.

The span of a call is named ``chat <model>`` and carries the ``gen_ai.*`` attributes
of the OpenTelemetry GenAI conventions (operation, provider, request and response
model, token usage, response id) plus ``promptlab.prompt_id`` / ``promptlab.variant``.

With ``exporter = "none"`` (the default) no tracer exists and :meth:`Telemetry.span`
returns one shared no-op context manager: the hot path pays a method call, not a span.
The tracer provider belongs to the app (no global provider is installed), so two apps
in one process, as in tests, do not share exporters.

An incoming W3C ``traceparent`` (and ``tracestate``) header makes the call's span a child
of the caller's span (:meth:`Telemetry.span` with ``headers=``), so the sidecar shows up
inside the application's trace. Exports go to ``otlp_endpoint`` over ``otlp_protocol``
with ``otlp_headers`` (secret values, never logged).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from promptlab.sidecar.config import TelemetrySettings

_NOOP: AbstractContextManager[Any] = nullcontext()


class Telemetry:
    """Spans for one app; a no-op unless an exporter is configured."""

    def __init__(self, settings: TelemetrySettings) -> None:
        self._provider: Any = None
        self._tracer: Any = None
        self._propagator: Any = None
        if settings.exporter == "none":
            return
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
        exporter: Any = (
            ConsoleSpanExporter() if settings.exporter == "console" else _otlp_exporter(settings)
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
        self._provider = provider
        self._tracer = provider.get_tracer("promptlab.sidecar")
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._propagator = TraceContextTextMapPropagator()

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def span(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> AbstractContextManager[Any]:
        """A span as the current one, or a no-op.

        Its parent is the current span, or with ``headers`` the span their
        ``traceparent`` names (a new trace when they carry none or a malformed one).
        """
        if self._tracer is None:
            return _NOOP
        context = self._propagator.extract(headers) if headers is not None else None
        return self._tracer.start_as_current_span(
            name, context=context, attributes=_clean(attributes)
        )

    def shutdown(self) -> None:
        """Export what is buffered and stop the exporter."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None
            self._tracer = None


def _otlp_exporter(settings: TelemetrySettings) -> Any:
    headers = {k: v.get_secret_value() for k, v in settings.otlp_headers.items()}
    if settings.otlp_protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError as exc:
            raise RuntimeError(
                'telemetry.otlp_protocol = "grpc" needs '
                "pip install opentelemetry-exporter-otlp-proto-grpc"
            ) from exc
        return GrpcExporter(endpoint=settings.otlp_endpoint, headers=headers or None)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.otlp_endpoint, headers=headers or None)


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    # OpenTelemetry rejects None values (with a warning per attribute).
    if not attributes:
        return None
    return {k: v for k, v in attributes.items() if v is not None}


def set_attributes(span: Any, attributes: Mapping[str, Any]) -> None:
    """Set attributes on a span (skipping None); ``span`` may be None (telemetry off)."""
    if span is not None:
        for key, value in attributes.items():
            if value is not None:
                span.set_attribute(key, value)
