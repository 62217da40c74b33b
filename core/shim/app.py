"""The HTTP shim: the phone system asks "who is calling?" and gets records, notification and script links.

Routes: ``GET /v1/lookup``, ``POST /v1/calls`` (both need ``Authorization: Bearer <tenant API token>``; the
tenant comes from the token alone), ``GET /healthz``, ``GET /metrics`` and the OpenAPI description
(``/openapi.json``, ``/docs``).

Speed (measured, see ``tests/bench/bench_lookup.py``):

* On SQLite a lookup's two or three indexed reads take tens of microseconds, so they run on the event loop:
  handing them to a thread cost more than the reads, and under load the GIL hand-off added tens of milliseconds
  to the p99. On PostgreSQL, where a read waits on the network, they run in a small thread pool.
* The two lookup routes are answered by :class:`ShimAPI` straight from the ASGI scope: FastAPI's middleware
  stack, router and per-request dependency solving cost about as much as the lookup. The documented FastAPI
  routes call the same handlers, so behaviour and OpenAPI description cannot drift apart.
* The lookups of one turn of the event loop share one SQLite read snapshot (see :meth:`Shim.run`).
* Answers are serialised straight to JSON bytes (``orjson``), not through a response model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import orjson
import pydantic_core
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import Receive, Scope, Send

from core.errors import SwitchboardError
from core.lookup import LookupResult, Lookups, LookupUnavailable
from core.matching import CallInput
from core.runtime import Runtime
from core.shim.metrics import MetricsMiddleware, ShimMetrics
from core.shim.oauth import create_oauth_router

log = logging.getLogger(__name__)

HEALTH_INTERVAL = 5.0
"""Seconds between database checks behind ``/healthz``."""

DB_THREADS = 4
"""Threads that run lookups when the database is reached over the network (PostgreSQL)."""

WARM_UP_SECONDS = 1.0
"""At most this long, before the shim answers, is spent reading the cache ahead (see :meth:`Shim.warm_up`)."""


# --- documented shapes (the answers themselves are serialised directly, in exactly this shape) ------------


class NumberOut(BaseModel):
    """The caller's number as received and as understood."""

    input: str
    e164: str | None = Field(description="None for an internal number.")
    national: str = Field(description="As dialled in the tenant's country (the form scripts use).")
    internal: bool = Field(description="A short internal number (device, extension): never matched.")


class IntegrationOut(BaseModel):
    """The connected CRM a match came from."""

    id: int
    name: str
    preset: str


class NotificationLine(BaseModel):
    """One line of the call notification."""

    label: str
    value: str


class ScriptOut(BaseModel):
    """A rendered script link."""

    name: str
    url: str
    auto_open: bool


class MatchOut(BaseModel):
    """One CRM record the call belongs to."""

    integration: IntegrationOut
    record_id: str
    match: str = Field(description="exact, or partial (last digits, only when unambiguous).")
    fields: dict[str, str]
    notification: list[NotificationLine]
    scripts: list[ScriptOut]


class LookupOut(BaseModel):
    """The answer to "who is calling?"."""

    number: NumberOut
    matches: list[MatchOut]
    scripts: list[ScriptOut] = Field(description="Tenant-level scripts and the no-match/always ones.")
    truncated: bool = Field(description="More records share this number than were returned.")


class CallIn(BaseModel):
    """A call, as the phone system reports it; only ``caller_number`` is required."""

    model_config = ConfigDict(extra="ignore")

    caller_number: str = Field(min_length=1, max_length=100, examples=["+31201234567"])
    caller_name: str | None = Field(default=None, max_length=200)
    device_number: str | None = Field(default=None, max_length=100, examples=["201"])
    device_name: str | None = Field(default=None, max_length=200)
    ddi_number: str | None = Field(default=None, max_length=100, examples=["0207654321"])
    ddi_name: str | None = Field(default=None, max_length=200)
    start_time: datetime | None = Field(
        default=None, description="ISO 8601; without an offset it is the tenant's local time. Default: now."
    )


class FieldProblem(BaseModel):
    """One problem with the request: where (``["query", "number"]``), what, and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationProblems(BaseModel):
    """The request is malformed; ``detail`` lists every problem."""

    detail: list[FieldProblem]


class Problem(BaseModel):
    """An error that is not about a request field."""

    detail: str


class Health(BaseModel):
    """Whether the shim and its database answer."""

    status: str
    database: str


_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": Problem,
        "description": "Missing, unknown or revoked API token.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    },
    503: {"model": Problem, "description": "The cache database did not answer; retry."},
}


# --- the shim's state ---------------------------------------------------------------------------------------


class Shim:
    """What the routes share: the lookups, where they run, the metrics and the health check."""

    def __init__(self, lookups: Lookups, *, inline: bool, metrics: ShimMetrics, owns_lookups: bool) -> None:
        self.lookups = lookups
        self.inline = inline
        self.metrics = metrics
        self._owns_lookups = owns_lookups
        self._executor = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="lookup")
        self._health: tuple[float, bool] = (-HEALTH_INTERVAL, False)
        self._holding = False

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run blocking database work: inline on SQLite, in the thread pool otherwise.

        Inline, the lookups of one turn of the event loop share a read snapshot (:meth:`Lookups.hold_snapshot`),
        released first thing on the next turn, before any request that turn reads is answered.
        """
        if self.inline:
            if not self._holding:
                self._holding = True
                self.lookups.hold_snapshot()
                asyncio.get_running_loop().call_soon(self._release)
            return function(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _release(self) -> None:
        self._holding = False
        self.lookups.release_snapshot()

    async def warm_up(self, seconds: float = WARM_UP_SECONDS) -> None:
        """Before answering: read the cache once on the connection inline lookups use (:meth:`Lookups.warm_up`).

        A step takes a few milliseconds and the loop runs between steps; after ``seconds`` the rest is left
        to be read as lookups need it. A database failure is only logged: the lookups will report it.
        """
        if not self.inline:
            return
        started = time.monotonic()
        steps = 0
        try:
            for _ in self.lookups.warm_up():
                steps += 1
                if time.monotonic() - started > seconds:
                    log.info("read the lookup cache for %.1f s; the rest is read as lookups need it", seconds)
                    return
                await asyncio.sleep(0)
        except LookupUnavailable:
            log.warning("could not read the lookup cache ahead; lookups will read it as they need it")
            return
        log.info("read the lookup cache once in %.2f s (%d steps)", time.monotonic() - started, steps)

    async def database_ok(self, engine: sa.Engine) -> bool:
        """Whether ``SELECT 1`` works, checked at most every :data:`HEALTH_INTERVAL` seconds."""
        checked, ok = self._health
        if time.monotonic() - checked < HEALTH_INTERVAL:
            return ok
        ok = await asyncio.get_running_loop().run_in_executor(self._executor, _ping, engine)
        self._health = (time.monotonic(), ok)
        return ok

    def close(self) -> None:
        """Stop the threads and close the connections."""
        self._executor.shutdown(wait=True)
        if self._owns_lookups:
            self.lookups.close()


def _ping(engine: sa.Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError as exc:
        log.warning("health check: the database did not answer (%s)", type(exc).__name__)
        return False


def _json(data: Any, status: int = 200) -> Response:
    return Response(pydantic_core.to_json(data), status_code=status, media_type="application/json")


def _problem(location: tuple[str | int, ...], message: str, kind: str) -> dict[str, Any]:
    return {"loc": list(location), "msg": message, "type": kind}


# --- the lookup routes: raw ASGI (FastAPI's routing and per-request parameter solving cost more than a lookup) --


@dataclass(slots=True)  # not frozen: made per request, and a frozen __init__ costs four times as much
class Answer:
    """A lookup route's response: status, JSON body, and any extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def response(self) -> Response:
        """As a Starlette response (for the documented FastAPI routes)."""
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in self.headers}
        return Response(self.body, status_code=self.status, media_type="application/json", headers=headers)


def _answer_json(data: Any, status: int = 200, headers: tuple[tuple[bytes, bytes], ...] = ()) -> Answer:
    return Answer(status, pydantic_core.to_json(data), headers)


def _unauthorized(message: str, *, invalid: bool) -> Answer:
    challenge = b'Bearer error="invalid_token"' if invalid else b"Bearer"
    return _answer_json({"detail": message}, 401, ((b"www-authenticate", challenge),))


def _invalid(problems: list[dict[str, Any]]) -> Answer:
    return _answer_json({"detail": problems}, 422)


def _bearer_token(scope: Scope) -> str | None:
    """The token of the request's ``Authorization: Bearer <token>`` header, or None."""
    header = b""
    for name, value in scope["headers"]:
        if name == b"authorization":  # ASGI servers hand header names over in lower case
            header = value
            break
    scheme, _, token = header.decode("latin-1").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def _lookup(shim: Shim, token: str, call: CallInput, where: Mapping[str, tuple[str, ...]]) -> Answer:
    try:
        result: LookupResult | None = await shim.run(shim.lookups.by_token, token, call)
    except SwitchboardError as error:
        if error.http_status != 422:
            return _answer_json({"detail": error.message}, error.http_status)
        kind = error.title.lower().replace(" ", "_")
        return _invalid([_problem(where.get(error.field or "", ("body",)), error.message, kind)])
    if result is None:
        return _unauthorized(
            "the API token is unknown or revoked; create one with `switchboard token create`", invalid=True
        )
    shim.metrics.observe_lookup(result.tenant_slug, result.outcome)
    return Answer(200, orjson.dumps(result.body))  # 0.5 us for a typical answer, pydantic_core.to_json 2 us


def _missing_token() -> Answer:
    return _unauthorized("send the tenant's API token as `Authorization: Bearer <token>`", invalid=False)


_QUERY_WHERE: dict[str, tuple[str, ...]] = {"caller_number": ("query", "number"), "ddi_number": ("query", "ddi")}
_BODY_WHERE: dict[str, tuple[str, ...]] = {name: ("body", name) for name in CallIn.model_fields}
_QUERY_LIMITS = {"number": (1, 100), "ddi": (0, 100)}
MAX_BODY = 16 * 1024
"""Largest ``POST /v1/calls`` body accepted, in bytes."""

_LOOKUP_PARAMETERS = [
    {
        "name": "number",
        "in": "query",
        "required": True,
        "description": "The caller's number, as the phone system has it (E.164 or national).",
        "schema": {"type": "string", "minLength": 1, "maxLength": 100},
        "example": "+31201234567",
    },
    {
        "name": "ddi",
        "in": "query",
        "required": False,
        "description": "The number the call came in on (for scripts with a DDI filter).",
        "schema": {"type": "string", "maxLength": 100},
    },
]
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]


def _form_decoded(text: str) -> str:
    """A query string's name or value decoded as ``parse_qsl`` does (``+`` is a space, ``%XX`` UTF-8)."""
    if "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    if text[:3] in ("%2B", "%2b") and "%" not in text[3:]:
        return "+" + text[3:]  # an E.164 number, the usual caller: what unquote() gives, at a tenth of its cost
    return unquote(text)


def _query(raw: bytes) -> dict[str, str]:
    """The query string as ``dict(parse_qsl(..., keep_blank_values=True))`` gives it, at a third of the cost."""
    query = {}
    for piece in raw.decode("latin-1").split("&"):
        if piece:
            name, _, value = piece.partition("=")
            query[_form_decoded(name)] = _form_decoded(value)
    return query


def _query_values(scope: Scope) -> tuple[dict[str, str], list[dict[str, Any]]]:
    query = _query(scope["query_string"])
    values: dict[str, str] = {}
    problems = []
    for name, (shortest, longest) in _QUERY_LIMITS.items():
        value = query.get(name)
        if value is None:
            if shortest:
                problems.append(_problem(("query", name), "Field required", "missing"))
            continue
        if not shortest <= len(value) <= longest:
            problems.append(_problem(("query", name), f"give {shortest}-{longest} characters", "string_length"))
        values[name] = value
    return values, problems


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or None when it is larger than :data:`MAX_BODY`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client went away; what is answered no longer matters
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def answer_lookup(shim: Shim, scope: Scope, receive: Receive) -> Answer:
    """``GET /v1/lookup``: token, then query, then the lookup."""
    token = _bearer_token(scope)
    if token is None:
        return _missing_token()
    values, problems = _query_values(scope)
    if problems:
        return _invalid(problems)
    call = CallInput(caller_number=values["number"], ddi_number=values.get("ddi"))
    return await _lookup(shim, token, call, _QUERY_WHERE)


async def answer_call(shim: Shim, scope: Scope, receive: Receive) -> Answer:
    """``POST /v1/calls``: token, then body, then the lookup."""
    token = _bearer_token(scope)
    if token is None:
        return _missing_token()
    body = await _read_body(receive)
    if body is None:
        return _answer_json({"detail": f"the body is larger than {MAX_BODY} bytes"}, 413)
    try:
        call = CallIn.model_validate_json(body)
    except ValidationError as exc:
        return _invalid([_problem(("body", *e["loc"]), e["msg"], e["type"]) for e in exc.errors(include_url=False)])
    return await _lookup(shim, token, CallInput(**call.model_dump()), _BODY_WHERE)


_Handler = Callable[[Shim, Scope, Receive], Awaitable[Answer]]
_CONTENT_TYPE = (b"content-type", b"application/json")
_INTERNAL_ERROR = b'{"detail":"internal error; the server\'s log has the details"}'


class ShimAPI(FastAPI):
    """The shim's ASGI app: the two lookup routes answered straight from the ASGI scope, the rest by FastAPI.

    A lookup is the one request that must be fast under load; FastAPI's middleware stack, router and
    per-request dependency solving cost about as much as the lookup itself, so those two routes skip them
    and do the few things the stack would have done themselves (metrics, the catch-all 500). The documented
    FastAPI routes call the same handlers, so behaviour and OpenAPI description cannot drift apart.
    """

    shim: Shim
    lookup_routes: dict[tuple[str, str], _Handler]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.lookup_routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        if handler is None:
            await super().__call__(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            answer = await handler(self.shim, scope, receive)
        except Exception as exc:  # the stack's catch-all, as for every other route: a 500, never a dropped line
            log.error("unexpected %s answering %s %s", type(exc).__name__, scope["method"], scope["path"])
            answer = Answer(500, _INTERNAL_ERROR)
        headers = [_CONTENT_TYPE, (b"content-length", b"%d" % len(answer.body)), *answer.headers]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        self.shim.metrics.answered(scope["path"], scope["method"], answer.status, time.perf_counter() - started)


def _add_lookup_routes(app: ShimAPI, shim: Shim) -> None:
    app.shim = shim
    app.lookup_routes = {("GET", "/v1/lookup"): answer_lookup, ("POST", "/v1/calls"): answer_call}

    @app.get(
        "/v1/lookup",
        tags=["lookup"],
        response_model=None,
        responses={200: {"model": LookupOut}, 422: {"model": ValidationProblems}, **_AUTH_RESPONSES},
        openapi_extra={"parameters": _LOOKUP_PARAMETERS, "security": _SECURITY},
    )
    async def lookup(request: Request) -> Response:
        """Who is calling? Matching records, notification fields and rendered script links."""
        return (await answer_lookup(shim, request.scope, request.receive)).response()

    @app.post(
        "/v1/calls",
        tags=["lookup"],
        response_model=None,
        responses={
            200: {"model": LookupOut},
            413: {"model": Problem, "description": f"The body is larger than {MAX_BODY} bytes."},
            422: {"model": ValidationProblems},
            **_AUTH_RESPONSES,
        },
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": CallIn.model_json_schema()}}},
            "security": _SECURITY,
        },
    )
    async def calls(request: Request) -> Response:
        """A call came in: the same answer as ``/v1/lookup``, with every call property for the scripts."""
        return (await answer_call(shim, request.scope, request.receive)).response()


def _add_operations_routes(app: FastAPI, shim: Shim, engine: sa.Engine) -> None:
    @app.get("/healthz", tags=["operations"], response_model=Health, responses={503: {"model": Health}})
    async def healthz() -> Response:
        """Whether the shim answers and its database does (checked at most every few seconds)."""
        ok = await shim.database_ok(engine)
        body = {"status": "ok" if ok else "degraded", "database": "ok" if ok else "unreachable"}
        return _json(body, 200 if ok else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics() -> Response:
        """Prometheus metrics: requests, latency, lookups per tenant."""
        return Response(shim.metrics.render(), media_type=shim.metrics.content_type)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return _invalid(
            [_problem(tuple(e.get("loc", ())), str(e.get("msg", "")), str(e.get("type", ""))) for e in exc.errors()]
        ).response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected %s answering %s %s", type(exc).__name__, request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the server's log has the details"}, status_code=500)


def _install_openapi(app: FastAPI) -> None:
    """Describe the bearer token scheme the lookup routes use (they read the header themselves)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["bearer"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "The tenant's API token (`switchboard token create --tenant SLUG`).",
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# --- the app ------------------------------------------------------------------------------------------------


def create_app(runtime: Runtime, *, lookups: Lookups | None = None, inline: bool | None = None) -> ShimAPI:
    """The shim as an ASGI app over ``runtime``'s database; ``app.state.shim.close()`` releases it.

    ``inline`` (default: on SQLite) runs the lookup's reads on the event loop instead of a thread pool.
    """
    engine = runtime.engine
    metrics = ShimMetrics()
    shim = Shim(
        lookups or Lookups(engine),
        inline=engine.dialect.name == "sqlite" if inline is None else inline,
        metrics=metrics,
        owns_lookups=lookups is None,
    )
    app = ShimAPI(
        title="switchboard lookup shim",
        version="1",
        description=__doc__,
        openapi_tags=[{"name": "lookup", "description": "Who is calling?"}, {"name": "operations"}],
        telemetry={"tracing": False, "metrics": False, "logs": False},  # Prometheus instead (see /metrics)
    )
    app.state.shim = shim
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _add_error_handlers(app)
    _add_lookup_routes(app, shim)
    _add_operations_routes(app, shim, engine)
    app.include_router(create_oauth_router(runtime))
    _install_openapi(app)
    return app
