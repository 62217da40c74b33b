"""Teamleader Focus API (contacts.list, companies.list) and its OAuth 2 server, as documented.

- ``GET /oauth2/authorize?client_id=&response_type=code&redirect_uri=&state=`` answers 302 to the redirect URI with
  ``code`` and ``state`` (the admin signed in). ``POST /oauth2/access_token`` (form or JSON) with ``client_id``,
  ``client_secret`` and ``grant_type=authorization_code`` (+ ``code``, ``redirect_uri``) or ``refresh_token``
  answers ``{token_type: "Bearer", expires_in: 3600, access_token, refresh_token}``. Refresh tokens rotate: each
  refresh retires the one used. A retired or unknown refresh token gets 401 ``{"error": "invalid_request",
  "error_description": "The refresh token is invalid.", ...}`` (League OAuth2 server format).
- ``POST /contacts.list`` and ``POST /companies.list`` with ``Authorization: Bearer`` and a JSON body
  ``{"filter": {...}, "page": {"size": 20, "number": 1}, "sort": [{"field": "added_at|name|updated_at",
  "order": "asc|desc"}]}``; the answer is ``{"data": [...]}`` with no total: a page shorter than ``page.size``
  is the last. ``page.size`` above 100 is refused with 400 (the SDKs' and this emulator's maximum).
- Records: ``id`` (UUID), names, ``emails [{type, email}]``, ``telephones [{type: phone|mobile|fax, number}]``
  (companies: ``phone|fax``), ``web_url``. Errors: ``{"errors": [{"code", "title", "status"}]}``.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, RecordedRequest

MAX_PAGE_SIZE = 100
SORT_FIELDS = {"contacts": {"added_at", "name", "updated_at"}, "companies": {"name", "added_at", "updated_at"}}
WEB = "https://focus.teamleader.eu"


class TeamleaderEmulator(EmulatedCrm):
    """A Teamleader Focus account with contacts and companies, and the OAuth server that guards it."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        contacts: Iterable[Mapping[str, Any]] = (),
        companies: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.resources = {
            "contacts": _with_ids(contacts, "contact_detail"),
            "companies": _with_ids(companies, "company_detail"),
        }
        self.codes: dict[str, str] = {}
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.grants: list[str] = []
        self.page_sizes: list[int] = []
        self._serial = itertools.count(1)
        super().__init__()

    def routes(self) -> list[Route]:
        return [
            Route("/oauth2/authorize", self.authorize),
            Route("/oauth2/access_token", self.token, methods=["POST"]),
            Route("/contacts.list", self.contacts_list, methods=["POST"]),
            Route("/companies.list", self.companies_list, methods=["POST"]),
        ]

    # ------------------------------------------------------------------------------------------------ oauth

    def expire_access_tokens(self) -> None:
        """Every access token expires at once (the next data request gets 401)."""
        self.access_tokens.clear()

    async def authorize(self, request: Request) -> Response:
        recorded = await self.record(request)
        query = recorded.query
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return self.json({"error": "invalid_client", "error_description": "Client authentication failed"},
                             status=401)  # fmt: skip
        code = f"def50200{next(self._serial):04d}code"
        self.codes[code] = query.get("redirect_uri", "")
        location = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}"
        return RedirectResponse(location, status_code=302)

    async def token(self, request: Request) -> Response:
        recorded = await self.record(request)
        form = _form_or_json(recorded)
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return self._oauth_error(401, "invalid_client", "Client authentication failed")
        grant = form.get("grant_type", "")
        self.grants.append(grant)
        if grant == "authorization_code":
            redirect = self.codes.pop(form.get("code", ""), None)
            if redirect is None or redirect != form.get("redirect_uri"):
                return self._oauth_error(400, "invalid_grant", "The authorization code is invalid or was revoked.")
        elif grant == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return self._oauth_error(401, "invalid_request", "The refresh token is invalid.")
            self.refresh_tokens.discard(form["refresh_token"])
        else:
            return self._oauth_error(400, "unsupported_grant_type", "The authorization grant type is not supported.")
        serial = next(self._serial)
        access, refresh = f"eyJ0eXAiOiJKV1Q.{serial:04d}.teamleader", f"def50200refresh{serial:04d}secret"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return self.json({"token_type": "Bearer", "expires_in": 3600, "access_token": access, "refresh_token": refresh})

    def _oauth_error(self, status: int, error: str, description: str) -> Response:
        body = {"error": error, "error_description": description, "hint": "", "message": description}
        return self.json(body, status=status)

    # ------------------------------------------------------------------------------------------------ data

    def unauthorized(self) -> Response:
        return self._errors(401, "Unauthorized")

    def rate_limited(self, fault: Fault) -> Response:
        headers = {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0", **fault.headers}
        return self.json({"errors": [{"code": 429, "title": "Too Many Requests", "status": 429}]}, status=429,
                         headers=headers)  # fmt: skip

    def _errors(self, status: int, title: str) -> Response:
        return self.json({"errors": [{"code": status, "title": title, "status": status}]}, status=status)

    async def contacts_list(self, request: Request) -> Response:
        return await self._list(request, "contacts")

    async def companies_list(self, request: Request) -> Response:
        return await self._list(request, "companies")

    async def _list(self, request: Request, resource: str) -> Response:
        recorded = await self.record(request)
        scheme, _, token = recorded.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.access_tokens:
            return self.unauthorized()
        try:
            body = json.loads(recorded.body or b"{}")
        except ValueError:
            return self._errors(400, "The body is not valid JSON")
        page = body.get("page") or {}
        size, number = page.get("size", 20), page.get("number", 1)
        if not isinstance(size, int) or not isinstance(number, int) or size < 1 or number < 1:
            return self._errors(400, "page.size and page.number must be positive integers")
        if size > MAX_PAGE_SIZE:
            return self._errors(400, f"The page.size may not be greater than {MAX_PAGE_SIZE}.")
        for sort in body.get("sort") or []:
            if sort.get("field") not in SORT_FIELDS[resource] or sort.get("order", "asc") not in ("asc", "desc"):
                return self._errors(400, f"Invalid sort field {sort.get('field')!r}")
        self.page_sizes.append(size)
        rows = self.resources[resource]
        start = (number - 1) * size
        return await self.respond({"data": rows[start : start + size]})


def _form_or_json(request: RecordedRequest) -> dict[str, str]:
    if request.headers.get("content-type", "").startswith("application/json"):
        data = request.json()
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return request.form()


def _with_ids(records: Iterable[Mapping[str, Any]], page: str) -> list[dict[str, Any]]:
    """UUIDs (distinct for contacts and companies) and the ``web_url`` Teamleader adds to each record."""
    serial = 0x8024_0000_0000_0000 if page == "contact_detail" else 0x9096_0000_0000_0000
    rows = []
    for i, record in enumerate(records):
        record_id = str(uuid.UUID(int=0x2A39E4203BA34384 << 64 | serial | i))
        rows.append({"id": record_id, **record, "web_url": f"{WEB}/{page}.php?id={record_id}"})
    return rows
