"""What every emulated CRM shares: a log of the requests it received and faults injected on demand."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it; header names are lower case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The JSON body."""
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """The form-encoded body."""
        return dict(parse_qsl(self.body.decode()))

    def basic_credentials(self) -> str | None:
        """The decoded ``Authorization: Basic`` value (``user:password``), if any."""
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            return base64.b64decode(value, validate=True).decode()
        except ValueError:
            return None


@dataclass(frozen=True)
class Fault:
    """Something to go wrong with one response."""

    kind: str
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @classmethod
    def rate_limit(cls, retry_after: str | None = "1", headers: dict[str, str] | None = None) -> Fault:
        """HTTP 429 in the vendor's shape, with ``Retry-After`` (seconds or an HTTP date) and/or other headers."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = retry_after
        return cls("rate_limit", 429, extra)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A 5xx answer."""
        return cls("server_error", status)

    @classmethod
    def hang(cls, seconds: float = 1.0) -> Fault:
        """Answer only after ``seconds`` (past the client's read timeout)."""
        return cls("hang", seconds=seconds)

    @classmethod
    def truncated_json(cls) -> Fault:
        """A 200 whose JSON body is cut in half (with a matching Content-Length)."""
        return cls("truncated")

    @classmethod
    def disconnect(cls) -> Fault:
        """Headers promise more bytes than are sent, then the connection closes."""
        return cls("disconnect")

    @classmethod
    def unauthorized(cls) -> Fault:
        """The vendor's 401, as if the credentials had just been revoked."""
        return cls("unauthorized", 401)

    @classmethod
    def html(cls) -> Fault:
        """A 200 with an HTML page (a captive portal or a sign-in page) instead of JSON."""
        return cls("html")


class FaultPlan:
    """Faults keyed by the number of the data request (1-based) they hit, or hitting every request."""

    def __init__(self) -> None:
        self._planned: dict[int, Fault] = {}
        self._always: Fault | None = None

    def on(self, *numbers: int, fault: Fault) -> FaultPlan:
        """Make data requests ``numbers`` fail with ``fault``."""
        for number in numbers:
            self._planned[number] = fault
        return self

    def always(self, fault: Fault | None) -> FaultPlan:
        """Make every data request fail (``None`` stops it)."""
        self._always = fault
        return self

    def take(self, number: int) -> Fault | None:
        """The fault for data request ``number``, if any."""
        return self._planned.pop(number, None) or self._always


Check = Callable[[RecordedRequest], bool]


def header_is(name: str, value: str) -> Check:
    """An auth check: header ``name`` equals ``value`` exactly."""
    return lambda request: request.headers.get(name.lower()) == value


def query_is(name: str, value: str) -> Check:
    """An auth check: query parameter ``name`` equals ``value``."""
    return lambda request: request.query.get(name) == value


class EmulatedCrm:
    """Base of the emulators: ``app`` (a Starlette app), ``requests`` received and ``faults`` to inject."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.faults = FaultPlan()
        self.data_requests = 0
        self.app = Starlette(routes=self.routes())

    def routes(self) -> list[Route]:
        """The vendor's endpoints."""
        raise NotImplementedError

    def unauthorized(self) -> Response:
        """The vendor's 401 answer."""
        return JSONResponse({"message": "Unauthorized"}, status_code=401)

    def rate_limited(self, fault: Fault) -> Response:
        """The vendor's 429 answer."""
        return JSONResponse({"message": "Too many requests"}, status_code=429, headers=fault.headers)

    def server_error(self, status: int) -> Response:
        """The vendor's 5xx answer."""
        return JSONResponse({"message": "Internal server error"}, status_code=status)

    async def record(self, request: Request) -> RecordedRequest:
        """Log the request and return it."""
        recorded = RecordedRequest(
            request.method,
            request.url.path,
            dict(request.query_params),
            {k.lower(): v for k, v in request.headers.items()},
            await request.body(),
        )
        self.requests.append(recorded)
        return recorded

    async def respond(self, payload: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        """The normal answer, unless a fault is planned for this data request."""
        self.data_requests += 1
        fault = self.faults.take(self.data_requests)
        if fault is None:
            return self.json(payload, status=status, headers=headers)
        if fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
            return self.json(payload, status=status, headers=headers)
        if fault.kind == "rate_limit":
            return self.rate_limited(fault)
        if fault.kind == "server_error":
            return self.server_error(fault.status)
        if fault.kind == "unauthorized":
            return self.unauthorized()
        if fault.kind == "html":
            return Response(b"<!doctype html><title>Sign in</title>", media_type="text/html")
        text = _dumps(payload)
        if fault.kind == "truncated":
            return Response(text[: len(text) // 2], media_type="application/json", headers=headers)
        assert fault.kind == "disconnect"
        return Response(
            text[: len(text) // 2], media_type="application/json", headers={"content-length": str(len(text))}
        )

    @staticmethod
    def json(payload: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        """A UTF-8 JSON response (non-ASCII characters sent as they are, as the vendors do)."""
        if status == 204:
            return Response(status_code=204, headers=headers)
        return Response(_dumps(payload), status_code=status, media_type="application/json", headers=headers)


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def int_param(query: dict[str, str], name: str, default: int) -> int | None:
    """An integer query parameter; ``None`` when it is not an integer."""
    value = query.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return None
