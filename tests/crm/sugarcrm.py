"""SugarCRM REST v10/v11 (Contacts, Accounts, Leads) with its OAuth 2.0 password grant, as documented.

- ``POST /rest/{v10|v11|v11_N}/oauth2/token``, JSON (or a form): ``grant_type=password`` with ``client_id``
  (``sugar``), ``client_secret`` (empty), ``username``, ``password`` and ``platform``; or
  ``grant_type=refresh_token``. Answers ``{"access_token", "expires_in": 3600, "token_type": "bearer", "scope",
  "refresh_token", "refresh_expires_in", "download_token"}``. A wrong password is a 401 ``need_login``; a
  platform not configured under Admin → Configure API Platforms is refused (400; the exact body is assumed).
  Signing in again on the same platform ends the earlier session: its token stops working.
- ``POST /rest/.../oauth2/logout`` with the token ends the session.
- ``GET /rest/.../{Module}?fields=&max_num=&offset=&order_by=&filter[0][field][$equals]=`` with the header
  ``OAuth-Token``; otherwise 401 ``{"error": "invalid_grant", "error_message": "The access token provided is
  invalid."}``. ``max_num`` defaults to 20 and is capped at ``max_record_fetch_size`` (1000); ``id`` and
  ``date_modified`` always come back, with ``_acl`` and ``_module``; ``{"next_offset": N | -1, "records": [...]}``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, int_param

MODULES = ("Contacts", "Accounts", "Leads")
_FILTER = re.compile(r"^filter\[0\]\[(\w+)\]\[\$equals\]$")


class SugarEmulator(EmulatedCrm):
    """A Sugar instance with one API user and the given records per module (raw, as the API sends them)."""

    def __init__(
        self,
        *,
        username: str,
        password: str,
        platforms: Iterable[str] = ("base", "mobile", "portal", "switchboard"),
        records: Mapping[str, Iterable[Mapping[str, Any]]] | None = None,
        expires_in: int = 3600,
        max_record_fetch_size: int = 1000,
    ) -> None:
        self.username = username
        self.password = password
        self.platforms = set(platforms)
        self.modules = {m: [dict(r) for r in (records or {}).get(m, ())] for m in MODULES}
        self.expires_in = expires_in
        self.max_record_fetch_size = max_record_fetch_size
        self.sessions: dict[str, str] = {}  # access token -> platform
        self.sign_ins: list[dict[str, Any]] = []  # the arguments of each sign-in, without the password
        self.issued: list[str] = []  # access tokens, in the order issued
        self.logouts = 0
        self._serial = itertools.count(1)
        super().__init__()

    def routes(self) -> list[Route]:
        return [
            Route("/rest/{version}/oauth2/token", self.token, methods=["POST"]),
            Route("/rest/{version}/oauth2/logout", self.logout, methods=["POST"]),
            Route("/rest/{version}/{module}", self.list_module),
        ]

    def expire_sessions(self) -> None:
        """Make every issued access token invalid (as if they timed out)."""
        self.sessions.clear()

    @staticmethod
    def error(status: int, code: str, message: str) -> Response:
        """Sugar's error body."""
        return EmulatedCrm.json({"error": code, "error_message": message}, status=status)

    def unauthorized(self) -> Response:
        return self.error(401, "invalid_grant", "The access token provided is invalid.")

    def rate_limited(self, fault: Fault) -> Response:
        response = self.error(429, "too_many_requests", "Too many requests")
        response.headers.update(fault.headers)
        return response

    def server_error(self, status: int) -> Response:
        return self.error(status, "fatal_error", "An unexpected error occurred.")

    async def token(self, request: Request) -> Response:
        recorded = await self.record(request)
        is_json = "json" in recorded.headers.get("content-type", "")
        args: dict[str, Any] = recorded.json() if is_json else recorded.form()
        self.sign_ins.append({k: v for k, v in args.items() if k != "password"})
        if args.get("client_id") != "sugar" or args.get("client_secret", "") != "":
            return self.error(400, "invalid_client", "The client credentials are invalid")
        if args.get("grant_type") != "password":
            return self.error(400, "unsupported_grant_type", "The grant type is not supported")
        if args.get("username") != self.username or args.get("password") != self.password:
            return self.error(401, "need_login", "You must specify a valid username and password.")
        platform = str(args.get("platform") or "base")
        if platform not in self.platforms:
            return self.error(
                400, "login_failure", f'The platform "{platform}" is not allowed. Contact the administrator.'
            )
        for token, used in list(self.sessions.items()):  # one session per user and platform
            if used == platform:
                del self.sessions[token]
        serial = next(self._serial)
        token = f"{serial:08x}-5e1f-4c7b-9a2d-acce55{serial:06d}"
        self.sessions[token] = platform
        self.issued.append(token)
        return self.json({
            "access_token": token, "expires_in": self.expires_in, "token_type": "bearer", "scope": None,
            "refresh_token": f"{serial:08x}-refresh", "refresh_expires_in": 1209600, "download_token": f"dl-{serial}",
        })  # fmt: skip

    async def logout(self, request: Request) -> Response:
        recorded = await self.record(request)
        if self.sessions.pop(recorded.headers.get("oauth-token", ""), None) is None:
            return self.unauthorized()
        self.logouts += 1
        return self.json({"success": True})

    async def list_module(self, request: Request) -> Response:
        recorded = await self.record(request)
        if recorded.headers.get("oauth-token", "") not in self.sessions:
            return self.unauthorized()
        module = request.path_params["module"]
        if module not in self.modules:
            return self.error(404, "not_found", f"Could not find a route with 1 elements: {module}")
        query = recorded.query
        max_num = int_param(query, "max_num", 20)
        offset = int_param(query, "offset", 0)
        if max_num is None or offset is None or offset < 0:
            return self.error(422, "invalid_parameter", "max_num and offset must be numbers")
        max_num = min(max_num, self.max_record_fetch_size)
        records = self.modules[module]
        for key, value in query.items():
            match = _FILTER.match(key)
            if match is None and key.startswith("filter"):
                return self.error(422, "invalid_parameter", f"Unsupported filter: {key}")
            if match is not None:
                records = [r for r in records if str(int(bool(r.get(match.group(1))))) == value]
        if query.get("order_by"):
            field, _, direction = query["order_by"].partition(":")
            records = sorted(records, key=lambda r: str(r.get(field, "")), reverse=direction.lower() == "desc")
        fields = [f for f in query.get("fields", "").split(",") if f]
        chunk = [self._present(r, module, fields) for r in records[offset : offset + max_num]]
        more = offset + max_num < len(records)
        return await self.respond({"next_offset": offset + max_num if more else -1, "records": chunk})

    @staticmethod
    def _present(record: Mapping[str, Any], module: str, fields: list[str]) -> dict[str, Any]:
        shown = {k: v for k, v in record.items() if not fields or k in fields or k in ("id", "date_modified")}
        return {**shown, "_acl": {"fields": {}}, "_module": module}
