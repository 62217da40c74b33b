"""Prometheus metrics of the HTTP shim, and the ASGI middleware that counts and times every request.

Labels never hold a phone number, a name or a token: routes are the fixed paths (anything else is ``other``),
tenants are their slugs.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("core.shim.access")

ROUTES = frozenset({"/v1/lookup", "/v1/calls", "/healthz", "/metrics", "/openapi.json", "/docs", "/redoc"})
"""Paths that get their own ``route`` label."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Seconds; a lookup should land in the first few."""


class ShimMetrics:
    """The shim's counters and histogram, in a registry of their own (one per app).

    Counted in plain dictionaries and handed to ``prometheus_client`` only when ``/metrics`` is read, by a
    collector: the client library's per-sample locks and label lookups cost a lookup several microseconds.
    Everything here runs on the shim's event loop thread (requests are counted and metrics rendered there).
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[str, list[float]] = {}  # route -> count per bucket (the last is +Inf), then the sum
        self._lookups: dict[tuple[str, str], int] = {}
        self.registry.register(_Collector(self))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and record how long it took."""
        key = (route, method, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        histogram = self._latency.get(route)
        if histogram is None:
            histogram = self._latency[route] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        histogram[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bucket whose bound is >= seconds
        histogram[-1] += seconds

    def observe_lookup(self, tenant: str, result: str) -> None:
        """Count one lookup of ``tenant`` (slug) with its result: exact, partial or none."""
        key = (tenant, result)
        self._lookups[key] = self._lookups.get(key, 0) + 1

    def families(self) -> Iterator[Metric]:
        """The metrics as Prometheus metric families."""
        requests = CounterMetricFamily(
            "switchboard_http_requests",
            "HTTP requests answered, by route, method and status.",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in sorted(self._requests.items()):
            requests.add_metric([route, method, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "switchboard_http_request_duration_seconds",
            "Time from request to the end of the response, by route.",
            labels=["route"],
        )
        for route, histogram in sorted(self._latency.items()):
            cumulative = list(accumulate(histogram[:-1]))
            buckets = [(str(bound), count) for bound, count in zip(LATENCY_BUCKETS, cumulative, strict=False)]
            latency.add_metric([route], [*buckets, ("+Inf", cumulative[-1])], sum_value=histogram[-1])
        yield latency
        lookups = CounterMetricFamily(
            "switchboard_lookups",
            "Lookups answered, by tenant slug and result (exact, partial or none).",
            labels=["tenant", "result"],
        )
        for (tenant, result), count in sorted(self._lookups.items()):
            lookups.add_metric([tenant, result], count)
        yield lookups

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)

    def answered(self, path: str, method: str, status: int, seconds: float) -> None:
        """Count, time and (at DEBUG) log one request to ``path``: never its query, which holds the number."""
        route = path if path in ROUTES else "other"
        self.observe_request(route, method, status, seconds)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %d %.2fms", method, route, status, seconds * 1000)


class _Collector(Collector):
    """Hands :class:`ShimMetrics`' counts to ``prometheus_client`` when the metrics are read."""

    def __init__(self, metrics: ShimMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request, logs it (path only, never the query)."""

    def __init__(self, app: ASGIApp, metrics: ShimMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.answered(scope["path"], scope["method"], status, time.perf_counter() - started)
