"""An Odoo server's external API for ``res.partner``: legacy JSON-RPC and (from 19.0) JSON-2, as documented.

- ``POST /jsonrpc`` ``{"jsonrpc": "2.0", "method": "call", "params": {"service", "method", "args"}, "id"}``:
  ``common.authenticate(db, login, key, {})`` answers the user id or ``false``; ``common.version()``;
  ``object.execute_kw(db, uid, key, model, method, args, kwargs)``. Failures come back with HTTP 200 and
  ``{"error": {"code": 200, "message": "Odoo Server Error", "data": {"name", "message", "arguments", "debug"}}}``.
- ``POST /json/2/res.partner/<method>`` (only when ``version >= 19``), a JSON object of named parameters,
  ``Authorization: bearer <API key>`` and ``X-Odoo-Database`` (required when ``databases`` lists several);
  200 with the result, else 4xx/5xx ``{"name", "message", "arguments", "context", "debug"}``.
- Methods: ``search_read(domain, fields, offset, limit, order)``, ``search_count(domain)``,
  ``fields_get(attributes)``. Domains of ``[field, op, value]`` with ``=``, ``!=``, ``>``, ``<``; ``order`` by
  ``id`` (asc/desc). A field the version does not have (``mobile`` from 19.0) makes the call fail, as in Odoo:
  "Invalid field 'mobile' on model 'res.partner'". Archived partners (``active`` false) are left out.
- Many2one fields are sent as ``[id, "name"]`` or ``false``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault

PARTNER_FIELDS = ("id", "name", "display_name", "is_company", "parent_id", "commercial_company_name", "phone",
                  "mobile", "email", "function", "ref", "user_id", "active", "write_date")  # fmt: skip
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
}  # fmt: skip


class OdooFailure(Exception):
    """An exception raised inside the emulated Odoo: its Python name and message."""

    def __init__(self, name: str, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.status = status


class OdooEmulator(EmulatedCrm):
    """An Odoo ``version`` server with the given partners, one user and their API key."""

    def __init__(
        self,
        *,
        login: str,
        api_key: str,
        databases: Iterable[str] = ("acme",),
        version: int = 17,
        partners: Iterable[Mapping[str, Any]] = (),
        uid: int = 2,
        access_error_on: str | None = None,
    ) -> None:
        self.login = login
        self.api_key = api_key
        self.databases = tuple(databases)
        self.version = version
        self.uid = uid
        self.access_error_on = access_error_on  # an ORM method the user may not call (an AccessError)
        self.fields = tuple(f for f in PARTNER_FIELDS if not (f == "mobile" and version >= 19))
        self.partners = [{k: v for k, v in p.items() if k in self.fields} for p in partners]
        self.calls: list[tuple[str, str]] = []  # ("json-rpc" or "json-2", method) of every call
        super().__init__()

    def routes(self) -> list[Route]:
        return [
            Route("/jsonrpc", self.jsonrpc, methods=["POST"]),
            Route("/json/2/{model}/{method}", self.json2, methods=["POST"]),
        ]

    # ------------------------------------------------------------------------------------------- the ORM

    def run(self, model: str, method: str, params: Mapping[str, Any]) -> Any:
        """``model.method(**params)`` on the partners."""
        if model != "res.partner":
            raise OdooFailure("KeyError", f"'{model}'")
        if method == self.access_error_on:
            raise OdooFailure("odoo.exceptions.AccessError",
                              "You are not allowed to access 'Contact' (res.partner) records.", 403)  # fmt: skip
        if method == "fields_get":
            return {f: {"type": "char", "string": f.replace("_", " ").title()} for f in self.fields}
        if method == "search_count":
            return len(self._search(params.get("domain", [])))
        if method != "search_read":
            raise OdooFailure("AttributeError", f"The method '{method}' does not exist on the model '{model}'")
        fields = list(params.get("fields") or self.fields)
        for field in fields:
            if field not in self.fields:
                raise OdooFailure("ValueError", f"Invalid field '{field}' on model 'res.partner'")
        rows = self._search(params.get("domain", []))
        order = str(params.get("order") or "id")
        rows.sort(key=lambda p: p["id"], reverse=order.endswith("desc"))
        offset = int(params.get("offset") or 0)
        limit = params.get("limit")
        chosen = rows[offset : offset + int(limit)] if limit else rows[offset:]
        return [{f: p.get(f, False) for f in {"id", *fields}} for p in chosen]

    def _search(self, domain: Any) -> list[dict[str, Any]]:
        if not isinstance(domain, list):
            raise OdooFailure("ValueError", f"Invalid domain: {domain!r}")
        rows = [p for p in self.partners if p.get("active", True)]
        for term in domain:
            if not (isinstance(term, list) and len(term) == 3 and term[1] in OPERATORS and term[0] in self.fields):
                raise OdooFailure("ValueError", f"Invalid leaf {term!r}")
            field, op, value = term
            rows = [p for p in rows if OPERATORS[op](p.get(field, False), value)]
        return rows

    # ------------------------------------------------------------------------------------------- JSON-RPC

    async def jsonrpc(self, request: Request) -> Response:
        recorded = await self.record(request)
        try:
            envelope = recorded.json()
            params = envelope["params"]
            service, method, args = params["service"], params["method"], list(params.get("args", []))
        except (ValueError, KeyError, TypeError):
            return self.json({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request"}},
                             status=400)  # fmt: skip
        self.calls.append(("json-rpc", method if service != "object" else str(args[4] if len(args) > 4 else "")))
        try:
            result = self._dispatch(service, method, args)
        except OdooFailure as failure:
            return self.json({"jsonrpc": "2.0", "id": envelope.get("id"), "error": _error_object(failure)})
        return await self.respond({"jsonrpc": "2.0", "id": envelope.get("id"), "result": result})

    def _dispatch(self, service: str, method: str, args: list[Any]) -> Any:
        if service == "common" and method == "version":
            return {"server_version": f"{self.version}.0", "server_version_info": [self.version, 0, 0, "final", 0, ""],
                    "protocol_version": 1}  # fmt: skip
        if service == "common" and method in ("authenticate", "login"):
            db, login, key = args[0], args[1], args[2]
            self._check_database(db)
            return self.uid if (login, key) == (self.login, self.api_key) else False
        if service == "object" and method == "execute_kw":
            db, uid, key, model, orm_method = args[:5]
            positional = args[5] if len(args) > 5 else []
            keywords = args[6] if len(args) > 6 else {}
            self._check_database(db)
            if uid != self.uid or key != self.api_key:
                raise OdooFailure("odoo.exceptions.AccessDenied", "Access Denied")
            if positional:
                raise OdooFailure("TypeError", "positional arguments are not supported by this emulator")
            return self.run(model, orm_method, keywords)
        raise OdooFailure("odoo.exceptions.UserError", f"Unknown method {service}.{method}")

    def _check_database(self, db: Any) -> None:
        if db not in self.databases:
            raise OdooFailure("psycopg2.OperationalError",
                              f'connection to server failed: FATAL:  database "{db}" does not exist')  # fmt: skip

    # ----------------------------------------------------------------------------------------------- JSON-2

    async def json2(self, request: Request) -> Response:
        recorded = await self.record(request)
        if self.version < 19:
            return Response(b"<!doctype html><title>404: Not Found</title>", status_code=404, media_type="text/html")
        scheme, _, key = recorded.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key != self.api_key:
            return self._json2_error(OdooFailure("werkzeug.exceptions.Unauthorized", "Invalid apikey", 401))
        db = recorded.headers.get("x-odoo-database")
        if db is None and len(self.databases) > 1:
            return self._json2_error(OdooFailure("werkzeug.exceptions.BadRequest", "Database not found.", 400))
        if db is not None and db not in self.databases:
            return self._json2_error(OdooFailure("werkzeug.exceptions.NotFound", f"Database {db} not found.", 404))
        method = request.path_params["method"]
        self.calls.append(("json-2", method))
        try:
            params = recorded.json() if recorded.body else {}
            result = self.run(request.path_params["model"], method, params)
        except OdooFailure as failure:
            failure.status = 422 if failure.name == "ValueError" else failure.status
            return self._json2_error(failure)
        return await self.respond(result)

    def _json2_error(self, failure: OdooFailure) -> Response:
        body = {"name": failure.name, "message": failure.message, "arguments": [failure.message], "context": {},
                "debug": f"Traceback (most recent call last):\n{failure.name}: {failure.message}\n"}  # fmt: skip
        return self.json(body, status=failure.status)

    def rate_limited(self, fault: Fault) -> Response:
        return self.json({"name": "werkzeug.exceptions.TooManyRequests", "message": "Too many requests"}, status=429,
                         headers=fault.headers)  # fmt: skip


def _error_object(failure: OdooFailure) -> dict[str, Any]:
    return {"code": 200, "message": "Odoo Server Error", "data": {
        "name": failure.name, "message": failure.message, "arguments": [failure.message], "context": {},
        "debug": f"Traceback (most recent call last):\n{failure.name}: {failure.message}\n"}}  # fmt: skip
