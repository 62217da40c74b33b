"""Exact Online REST API (bulk CRM Accounts and Contacts, current/Me) and its OAuth 2 server, as documented.

- ``GET /api/oauth2/auth?client_id=&redirect_uri=&response_type=code&state=`` answers 302 with ``code``;
  ``POST /api/oauth2/token`` (form, client id and secret in the body) with ``grant_type=authorization_code`` or
  ``refresh_token`` answers ``{access_token, token_type: "bearer", expires_in: "600", refresh_token}`` (the
  lifetime is a string of seconds: 10 minutes). Refresh tokens rotate: the one used is retired; a retired one
  gets 400 ``{"error": "invalid_grant"}``.
- ``GET /api/v1/current/Me?$select=CurrentDivision`` → ``{"d": {"results": [{"CurrentDivision": N, ...}]}}``.
- ``GET /api/v1/{division}/bulk/CRM/Accounts|Contacts?$select=...`` with ``Authorization: Bearer``:
  ``$select`` is mandatory on bulk endpoints (400 otherwise; a property the entity does not have is a 400 too);
  ``{"d": {"results": [...], "__next": "<absolute URL with $skiptoken=guid'...'>"}}``, 1,000 records a page
  (settable here, to test paging with few records), ``__next`` absent on the last page. Every record has
  ``__metadata {uri, type}``. Another division than the user's is a 403.
- Without ``Accept: application/json`` the answer is Atom XML, as on the real service.
- Rate limits: ``X-RateLimit-Limit/Remaining/Reset`` (daily) and ``X-RateLimit-Minutely-Limit/Remaining/Reset``
  (resets in epoch milliseconds) on every answer; 429 when a limit is hit.
- Errors: ``{"error": {"code": "", "message": {"lang": "", "value": "..."}}}``.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, RecordedRequest

PROPERTIES: dict[str, frozenset[str]] = {
    "Accounts": frozenset({
        "ID", "Name", "Code", "Phone", "PhoneExtension", "Fax", "Email", "Website", "Status", "Blocked",
        "AccountManagerFullName", "City", "Country", "Modified",
    }),
    "Contacts": frozenset({
        "ID", "FullName", "FirstName", "LastName", "Email", "Phone", "PhoneExtension", "Mobile", "BusinessPhone",
        "BusinessPhoneExtension", "BusinessMobile", "BusinessFax", "BusinessEmail", "Account", "AccountName", "Code",
        "JobTitleDescription", "Modified",
    }),
}  # fmt: skip


class ExactOnlineEmulator(EmulatedCrm):
    """One Exact Online division with accounts and contacts, and the OAuth server in front of it."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        division: int,
        accounts: Iterable[Mapping[str, Any]] = (),
        contacts: Iterable[Mapping[str, Any]] = (),
        page_size: int = 1000,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.division = division
        self.entities = {"Accounts": _with_ids(accounts, 0xCFFA85F6), "Contacts": _with_ids(contacts, 0x5E7B1C2D)}
        self.page_size = page_size
        self.codes: dict[str, str] = {}
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.grants: list[str] = []
        self.minutely_remaining = 60
        self._serial = itertools.count(1)
        super().__init__()

    def routes(self) -> list[Route]:
        return [
            Route("/api/oauth2/auth", self.authorize),
            Route("/api/oauth2/token", self.token, methods=["POST"]),
            Route("/api/v1/current/Me", self.me),
            Route("/api/v1/{division}/bulk/CRM/{entity}", self.bulk),
        ]

    # ------------------------------------------------------------------------------------------------ oauth

    def expire_access_tokens(self) -> None:
        """Every access token expires (they live 10 minutes)."""
        self.access_tokens.clear()

    async def authorize(self, request: Request) -> Response:
        recorded = await self.record(request)
        query = recorded.query
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return self._error(400, "invalid client or response type")
        code = f"stampNL001.{next(self._serial):04d}code"
        self.codes[code] = query.get("redirect_uri", "")
        return RedirectResponse(f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}",
                                status_code=302)  # fmt: skip

    async def token(self, request: Request) -> Response:
        recorded = await self.record(request)
        form = recorded.form()
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return self.json({"error": "invalid_client"}, status=400)
        grant = form.get("grant_type", "")
        self.grants.append(grant)
        if grant == "authorization_code":
            if self.codes.pop(form.get("code", ""), None) != form.get("redirect_uri"):
                return self.json({"error": "invalid_grant"}, status=400)
        elif grant == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return self.json({"error": "invalid_grant"}, status=400)
            self.refresh_tokens.discard(form["refresh_token"])
        else:
            return self.json({"error": "unsupported_grant_type"}, status=400)
        serial = next(self._serial)
        access, refresh = f"stampNL001.gAAA{serial:04d}access", f"stampNL001.Gf7{serial:04d}refresh"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return self.json({"access_token": access, "token_type": "bearer", "expires_in": "600",
                          "refresh_token": refresh})  # fmt: skip

    # ------------------------------------------------------------------------------------------------ data

    def _error(self, status: int, value: str, headers: dict[str, str] | None = None) -> Response:
        return self.json({"error": {"code": "", "message": {"lang": "", "value": value}}}, status=status,
                         headers=headers)  # fmt: skip

    def unauthorized(self) -> Response:
        return self._error(401, "Unauthorized", {"WWW-Authenticate": "Bearer"})

    def rate_limited(self, fault: Fault) -> Response:
        return self._error(429, "API rate limit exceeded", {**self._limits(minutely_remaining=0), **fault.headers})

    def _limits(self, minutely_remaining: int | None = None) -> dict[str, str]:
        now_ms = int(time.time() * 1000)
        remaining = self.minutely_remaining if minutely_remaining is None else minutely_remaining
        return {
            "X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4900",
            "X-RateLimit-Reset": str(now_ms - now_ms % 86_400_000 + 86_400_000),
            "X-RateLimit-Minutely-Limit": "60", "X-RateLimit-Minutely-Remaining": str(remaining),
            "X-RateLimit-Minutely-Reset": str(now_ms - now_ms % 60_000 + 60_000),
        }  # fmt: skip

    def _admit(self, request: RecordedRequest) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.access_tokens:
            return self.unauthorized()
        if "application/json" not in request.headers.get("accept", ""):
            atom = '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"></feed>'
            return Response(atom, media_type="application/atom+xml")
        return None

    async def me(self, request: Request) -> Response:
        recorded = await self.record(request)
        refused = self._admit(recorded)
        if refused is not None:
            return refused
        metadata = {"uri": f"{request.base_url}api/v1/current/Me(guid'0a1b')", "type": "Exact.Web.Api.System.Me"}
        me = {"__metadata": metadata, "CurrentDivision": self.division}
        return self.json({"d": {"results": [me]}}, headers=self._limits())

    async def bulk(self, request: Request) -> Response:
        recorded = await self.record(request)
        refused = self._admit(recorded)
        if refused is not None:
            return refused
        entity = request.path_params["entity"]
        if entity not in self.entities:
            return self._error(404, f"Resource not found: bulk/CRM/{entity}")
        if request.path_params["division"] != str(self.division):
            return self._error(403, f"Forbidden: division {request.path_params['division']} is not available")
        select = recorded.query.get("$select", "")
        if not select:
            return self._error(400, "$select is mandatory for bulk endpoints.")
        names = [n.strip() for n in select.split(",")]
        unknown = next((n for n in names if n not in PROPERTIES[entity]), None)
        if unknown:
            return self._error(400, f"Property '{unknown}' does not exist on type 'Exact.Web.Api.Models.CRM.{entity}'")
        rows = self.entities[entity]
        start = _after(rows, recorded.query.get("$skiptoken", ""))
        chunk = rows[start : start + self.page_size]
        base = f"{request.base_url}api/v1/{self.division}/bulk/CRM/{entity}"
        results = [
            {"__metadata": {"uri": f"{base}(guid'{row['ID']}')", "type": f"Exact.Web.Api.Models.CRM.{entity}"},
             **{n: row.get(n) for n in names}}
            for row in chunk
        ]  # fmt: skip
        d: dict[str, Any] = {"results": results}
        if start + self.page_size < len(rows):
            d["__next"] = f"{base}?$select={quote(select, safe=',')}&$skiptoken=guid'{chunk[-1]['ID']}'"
        self.minutely_remaining = max(0, self.minutely_remaining - 1)
        return await self.respond({"d": d}, headers=self._limits())


def _after(rows: list[dict[str, Any]], skiptoken: str) -> int:
    """The index of the first row after the one the ``$skiptoken`` names."""
    match = re.fullmatch(r"guid'([0-9a-f-]+)'", skiptoken)
    if not match:
        return 0
    return next(i + 1 for i, row in enumerate(rows) if row["ID"] == match.group(1))


def _with_ids(records: Iterable[Mapping[str, Any]], prefix: int) -> list[dict[str, Any]]:
    return [{"ID": str(uuid.UUID(int=prefix << 96 | 0xC82C_45CB_BD4E_0000_0000 | i)), **r}
            for i, r in enumerate(records)]  # fmt: skip
