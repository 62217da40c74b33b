"""Zoho CRM API v8 (Contacts, Accounts, Leads) and the Zoho Accounts token endpoint, as documented.

- ``POST /oauth/v2/token`` (accounts server, form): ``grant_type=refresh_token`` with ``client_id``,
  ``client_secret`` and ``refresh_token`` answers ``{access_token, api_domain, token_type: "Bearer",
  expires_in: 3600}``; the refresh token does not rotate. A bad or revoked refresh token gets HTTP 200 with
  ``{"error": "invalid_code"}`` (Zoho's way), a bad client 200 with ``{"error": "invalid_client"}`` (not in
  crm-apis.md; seen by Zoho's clients: zoho/zcrm-csharp-sdk#7, schmorrison/Zoho#12, Weble/ZohoBooksApi#84).
- ``GET /crm/v8/{Contacts|Accounts|Leads}?fields=...&page=&per_page=`` with ``Authorization: Zoho-oauthtoken
  <token>`` (``Bearer`` is refused); ``fields`` is mandatory (at most 50 API names, unknown names refused).
- ``per_page`` defaults to 200 and may not exceed it; ``page`` works up to record 2,000 (``page * per_page``),
  beyond that only ``page_token`` (from ``info.next_page_token``, never together with ``page``).
  ``info = {per_page, count, page, sort_by, sort_order, more_records, next_page_token, previous_page_token,
  page_token_expiry}``.
- A module without records answers 204 No Content with an empty body.
- Errors: ``{"code": ..., "details": {...}, "message": ..., "status": "error"}`` — 401 ``INVALID_TOKEN``,
  400 ``REQUIRED_PARAM_MISSING`` / ``INVALID_DATA`` / ``DISCRETE_PAGINATION_LIMIT_EXCEEDED``, 429
  ``TOO_MANY_REQUESTS``.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, RecordedRequest, int_param

FIELDS: dict[str, frozenset[str]] = {
    "Contacts": frozenset({
        "First_Name", "Last_Name", "Full_Name", "Salutation", "Email", "Title", "Department", "Phone", "Mobile",
        "Home_Phone", "Other_Phone", "Asst_Phone", "Fax", "Account_Name", "Owner", "Modified_Time",
    }),
    "Accounts": frozenset({
        "Account_Name", "Account_Number", "Phone", "Fax", "Website", "Owner", "Industry", "Modified_Time",
    }),
    "Leads": frozenset({
        "First_Name", "Last_Name", "Full_Name", "Salutation", "Company", "Email", "Designation", "Phone", "Mobile",
        "Fax", "Owner", "Lead_Status", "Modified_Time",
    }),
}  # fmt: skip
MAX_PER_PAGE = 200
PAGE_LIMIT = 2000
MAX_FIELDS = 50


class ZohoEmulator(EmulatedCrm):
    """A Zoho CRM org and its accounts server (both on one address, as a test needs)."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        contacts: Iterable[Mapping[str, Any]] = (),
        accounts: Iterable[Mapping[str, Any]] = (),
        leads: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.access_tokens: set[str] = set()
        self.modules = {
            "Contacts": _with_ids(contacts, 1),
            "Accounts": _with_ids(accounts, 2),
            "Leads": _with_ids(leads, 3),
        }
        self.page_sizes: list[int] = []
        self.token_requests = 0
        self.refresh_revoked = False
        self._serial = itertools.count(1)
        super().__init__()

    def routes(self) -> list[Route]:
        return [
            Route("/oauth/v2/token", self.token, methods=["POST"]),
            Route("/crm/v8/{module}", self.records),
        ]

    def revoke_tokens(self) -> None:
        """Make every access token invalid (as when it expires early)."""
        self.access_tokens.clear()

    def revoke_refresh_token(self) -> None:
        """The admin removed the connection in Zoho: the refresh token and its access tokens stop working."""
        self.refresh_revoked = True
        self.access_tokens.clear()

    async def token(self, request: Request) -> Response:
        recorded = await self.record(request)
        form = {**recorded.query, **recorded.form()}
        self.token_requests += 1
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return self.json({"error": "invalid_client"})
        if (
            self.refresh_revoked
            or form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") != self.refresh_token
        ):
            return self.json({"error": "invalid_code"})
        token = f"1000.{next(self._serial):04d}accesssecret.zoho"
        self.access_tokens.add(token)
        return self.json({
            "access_token": token, "api_domain": str(request.base_url).rstrip("/"), "token_type": "Bearer",
            "expires_in": 3600,
        })  # fmt: skip

    def unauthorized(self) -> Response:
        return self._error(401, "INVALID_TOKEN", "invalid oauth token")

    def rate_limited(self, fault: Fault) -> Response:
        return self.json(
            {"code": "TOO_MANY_REQUESTS", "details": {}, "message": "You have reached the limit", "status": "error"},
            status=429,
            headers=fault.headers,
        )

    def _error(self, status: int, code: str, message: str, **details: Any) -> Response:
        return self.json({"code": code, "details": details, "message": message, "status": "error"}, status=status)

    def _authorized(self, request: RecordedRequest) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "Zoho-oauthtoken" and token in self.access_tokens

    async def records(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not self._authorized(recorded):
            return self.unauthorized()
        module = request.path_params["module"]
        if module not in self.modules:
            return self._error(400, "INVALID_MODULE", "the module name given seems to be invalid", module=module)
        query = recorded.query
        names = [n for n in query.get("fields", "").split(",") if n]
        if not names:
            message = "One of the expected parameter is missing"
            return self._error(400, "REQUIRED_PARAM_MISSING", message, param="fields")
        unknown = [n for n in names if n not in FIELDS[module]]
        if unknown or len(names) > MAX_FIELDS:
            return self._error(400, "INVALID_DATA", "invalid data", api_name=(unknown or names)[0])
        size = int_param(query, "per_page", MAX_PER_PAGE)
        if size is None or not 1 <= size <= MAX_PER_PAGE:
            return self._error(400, "INVALID_DATA", "the per_page value is invalid", param="per_page")
        self.page_sizes.append(size)
        start = self._start(query, size)
        if isinstance(start, Response):
            return start
        rows = self.modules[module]
        if not rows:
            return await self.respond(None, status=204)
        chunk = [{"id": r["id"], **{n: r.get(n) for n in names}} for r in rows[start : start + size]]
        more = start + size < len(rows)
        token = base64.urlsafe_b64encode(f"{module}:{start + size}".encode()).decode() if more else None
        info = {
            "per_page": size, "count": len(chunk), "page": start // size + 1, "sort_by": "id", "sort_order": "desc",
            "more_records": more, "next_page_token": token, "previous_page_token": None,
            "page_token_expiry": "2026-11-26T15:08:14+05:30" if token else None,
        }  # fmt: skip
        return await self.respond({"data": chunk, "info": info})

    def _start(self, query: dict[str, str], size: int) -> int | Response:
        """The first record of the page asked for, by page number or by page token."""
        if "page_token" in query:
            if "page" in query:
                return self._error(400, "INVALID_DATA", "page and page_token cannot be used together")
            try:
                return int(base64.urlsafe_b64decode(query["page_token"]).decode().partition(":")[2])
            except ValueError:
                return self._error(400, "INVALID_DATA", "the page_token is invalid or expired", param="page_token")
        page = int_param(query, "page", 1)
        if page is None or page < 1:
            return self._error(400, "INVALID_DATA", "the page value is invalid", param="page")
        if page * size > PAGE_LIMIT:
            return self._error(400, "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                               "cannot fetch more than 2000 records with the page param; use page_token")  # fmt: skip
        return (page - 1) * size


def _with_ids(records: Iterable[Mapping[str, Any]], module: int) -> list[dict[str, Any]]:
    rows = []
    for i, record in enumerate(records):
        row = dict(record)
        row.setdefault("id", f"29315490000{module}{i:07d}")
        rows.append(row)
    return rows
