"""Prometheus metrics of the HTTP shim, and the ASGI middleware that counts and times every request.

Labels never hold a phone number, a name or a token: routes are the fixed paths (anything else is ``other``),
tenants are their slugs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("core.shim.access")

ROUTES = frozenset({"/v1/lookup", "/v1/calls", "/healthz", "/metrics", "/openapi.json", "/docs", "/redoc"})
"""Paths that get their own ``route`` label."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Seconds; a lookup should land in the first few."""


class ShimMetrics:
    """The shim's counters and histogram, in a registry of their own (one per app)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "switchboard_http_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "switchboard_http_request_duration_seconds",
            "Time from request to the end of the response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._lookups = Counter(
            "switchboard_lookups",
            "Lookups answered, by tenant slug and result (exact, partial or none).",
            ["tenant", "result"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and record how long it took."""
        self._child(self._requests, route, method, str(status)).inc()
        self._child(self._latency, route).observe(seconds)

    def answered(self, path: str, method: str, status: int, seconds: float) -> None:
        """Count, time and (at DEBUG) log one request to ``path``: never its query, which holds the number."""
        route = path if path in ROUTES else "other"
        self.observe_request(route, method, status, seconds)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %d %.2fms", method, route, status, seconds * 1000)

    def observe_lookup(self, tenant: str, result: str) -> None:
        """Count one lookup of ``tenant`` (slug) with its result: exact, partial or none."""
        self._child(self._lookups, tenant, result).inc()

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


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
