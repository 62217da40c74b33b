"""SuperOffice CRM Online: the OAuth 2.0 sign-in and the WebAPI REST v1 Person and Contact archives.

One server plays both hosts of a tenant (``https://online.superoffice.com``):

- ``GET /login/common/oauth/authorize?response_type=code&client_id=&redirect_uri=&scope=openid&state=``
  answers 302 to ``redirect_uri?code=&state=`` (the admin signed in).
- ``POST /login/common/oauth/tokens``: ``authorization_code`` and ``refresh_token`` grants with ``client_id``
  and ``client_secret``, read from the form body or, as SuperOffice's own examples send them, the query
  string. Answers ``{"token_type": "Bearer", "access_token", "expires_in", "refresh_token"?, "id_token"}``;
  the refresh token lasts (SuperOffice's do not expire), access tokens can be revoked with
  ``revoke_access_token``. Errors are RFC 6749 JSON (``invalid_client``, ``invalid_grant``).
- ``GET /{tenant}/api/v1/{Person|Contact}?$select=&$filter=&$orderBy=&$top=&$skip=&$jsonSafe=`` with
  ``Authorization: Bearer <access token>``: ``{"odata.metadata", "odata.nextLink"?, "value": [...]}``, each row
  with ``PrimaryKey``, ``EntityName`` and the selected columns only (empty columns as ``""``). A column the
  archive does not know is a 400 in SuperOffice's error shape (``{"Error": true, "ErrorType", "ErrorMessage",
  "ErrorSource"}``); so is an unsupported ``$filter`` (only ``retired set false|true`` is understood here).
  ``$jsonSafe=true`` turns ``/`` in the keys into ``_`` (unless ``json_safe=False``: a server that ignores
  it, the other reading of the docs). ``next_link`` says whether ``odata.nextLink`` is sent
  while rows remain (the docs do not say when the server fills it); ``max_top`` clamps ``$top`` as a server
  might.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, int_param

PERSON_COLUMNS = frozenset({
    "personId", "contactId", "firstName", "lastName", "middleName", "fullName", "title", "mrMrs", "retired",
    "personNumber", "email/emailAddress", "personContact/name", "personContact/number", "phone/formattedNumber",
    "personDirectPhone/formattedNumber", "personMobilePhone/formattedNumber", "personPrivate/formattedNumber",
    "personPager/formattedNumber", "personDirectFax/formattedNumber",
})  # fmt: skip
COMPANY_COLUMNS = frozenset({
    "contactId", "name", "department", "nameDepartment", "number", "orgnr", "code", "category", "business",
    "email/emailAddress", "contactAssociate/fullName", "contactPhone/formattedNumber", "contactFax/formattedNumber",
    "searchPhone/formattedNumber", "url/URLAddress",
})  # fmt: skip
ARCHIVES = {"Person": ("person", "personId", PERSON_COLUMNS), "Contact": ("contact", "contactId", COMPANY_COLUMNS)}


class SuperOfficeEmulator(EmulatedCrm):
    """A SuperOffice Online tenant with the given persons and companies (rows keyed by archive column names)."""

    def __init__(
        self,
        *,
        tenant: str,
        client_id: str,
        client_secret: str,
        persons: Iterable[Mapping[str, Any]] = (),
        companies: Iterable[Mapping[str, Any]] = (),
        next_link: bool = True,
        max_top: int = 1000,
        json_safe: bool = True,
    ) -> None:
        self.tenant = tenant
        self.client_id = client_id
        self.client_secret = client_secret
        self.rows = {"Person": [dict(p) for p in persons], "Contact": [dict(c) for c in companies]}
        self.next_link = next_link
        self.max_top = max_top
        self.json_safe = json_safe
        self.access_token: str | None = None
        self.refresh_tokens: set[str] = set()
        self.codes: dict[str, str] = {}
        self.grants: list[str] = []
        self._serial = itertools.count(1)
        super().__init__()

    def routes(self) -> list[Route]:
        return [
            Route("/login/common/oauth/authorize", self.authorize),
            Route("/login/common/oauth/tokens", self.tokens, methods=["POST"]),
            Route("/{tenant}/api/v1/{archive}", self.archive),
        ]

    # ------------------------------------------------------------------------------------------------ OAuth

    def issue_refresh_token(self) -> str:
        """A refresh token as if the admin had signed in earlier."""
        token = f"rt{next(self._serial)}-{self.tenant}"
        self.refresh_tokens.add(token)
        return token

    def revoke_access_token(self) -> None:
        """Make the current access token invalid (as if it expired early)."""
        self.access_token = None

    async def authorize(self, request: Request) -> Response:
        recorded = await self.record(request)
        query = recorded.query
        if query.get("response_type") != "code" or query.get("client_id") != self.client_id:
            return self.json({"error": "invalid_request"}, status=400)
        code = f"code-{next(self._serial)}"
        self.codes[code] = query.get("redirect_uri", "")
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}"
        return RedirectResponse(target, status_code=302)

    async def tokens(self, request: Request) -> Response:
        recorded = await self.record(request)
        params = {**recorded.query, **(recorded.form() if recorded.body else {})}
        if params.get("client_id") != self.client_id or params.get("client_secret") != self.client_secret:
            return self.json({"error": "invalid_client", "error_description": "Unknown client"}, status=401)
        grant = params.get("grant_type", "")
        self.grants.append(grant)
        answer: dict[str, Any] = {"token_type": "Bearer", "expires_in": 3600, "id_token": "eyJhbGciOiJSUzI1NiJ9.e30.c"}
        if grant == "authorization_code":
            if self.codes.pop(params.get("code", ""), None) is None:
                return self.json({"error": "invalid_grant", "error_description": "Unknown code"}, status=400)
            answer["refresh_token"] = self.issue_refresh_token()
        elif grant == "refresh_token":
            if params.get("refresh_token") not in self.refresh_tokens:
                return self.json({"error": "invalid_grant", "error_description": "Invalid refresh token"}, status=400)
        else:
            return self.json({"error": "unsupported_grant_type"}, status=400)
        self.access_token = f"8A:{self.tenant}.AR{next(self._serial):06d}"
        answer["access_token"] = self.access_token
        return self.json(answer)

    # ------------------------------------------------------------------------------------------------- data

    @staticmethod
    def error(status: int, error_type: str, message: str) -> Response:
        """SuperOffice's documented error body."""
        body = {"Error": True, "ErrorType": error_type, "ErrorMessage": message,
                "ErrorSource": "SuperOffice.Services.Implementation"}  # fmt: skip
        return EmulatedCrm.json(body, status=status)

    def unauthorized(self) -> Response:
        return self.error(401, "SoAuthenticationException", "Invalid or expired access token")

    def rate_limited(self, fault: Fault) -> Response:
        response = self.error(429, "SoTooManyRequestsException", "Too many requests")
        response.headers.update(fault.headers)
        return response

    def server_error(self, status: int) -> Response:
        return self.error(status, "Exception", "Internal error")

    async def archive(self, request: Request) -> Response:
        recorded = await self.record(request)
        header = recorded.headers.get("authorization", "")
        if self.access_token is None or header != f"Bearer {self.access_token}":
            return self.unauthorized()
        archive = request.path_params["archive"]
        if request.path_params["tenant"] != self.tenant or archive not in ARCHIVES:
            return self.error(404, "SoNotFoundException", f"No such resource: {request.url.path}")
        entity, key, known = ARCHIVES[archive]
        query = recorded.query
        columns = [c.strip() for c in query.get("$select", key).split(",") if c.strip()]
        unknown = [c for c in columns if c not in known]
        if unknown:
            return self.error(400, "ArgumentException", f"Column '{unknown[0]}' is not supported by the archive")
        rows = self.rows[archive]
        flt = query.get("$filter", "")
        if flt:
            if flt not in ("retired set false", "retired set true") or archive != "Person":
                return self.error(400, "SoArgumentException", f"Cannot parse filter: {flt}")
            wanted = flt.endswith("true")
            rows = [r for r in rows if bool(r.get("retired")) is wanted]
        if query.get("$orderBy"):
            rows = sorted(rows, key=lambda r: r[query["$orderBy"]])
        top = int_param(query, "$top", 1000)
        skip = int_param(query, "$skip", 0)
        if top is None or skip is None or top < 0 or skip < 0:
            return self.error(400, "SoArgumentException", "$top and $skip must be numbers")
        top = min(top, self.max_top)
        safe = self.json_safe and query.get("$jsonSafe", "false").lower() == "true"
        chunk = rows[skip : skip + top]
        payload: dict[str, Any] = {
            "odata.metadata": f"{request.base_url}{self.tenant}/api/v1/archive$metadata",
            "value": [self._present(row, entity, key, columns, safe) for row in chunk],
        }
        if self.next_link and skip + top < len(rows):
            rest = {k: v for k, v in query.items() if k not in ("$skip", "$top")}
            link_query = urlencode({**rest, "$top": top, "$skip": skip + top})
            payload["odata.nextLink"] = f"{request.base_url}{self.tenant}/api/v1/{archive}?{link_query}"
        return await self.respond(payload)

    @staticmethod
    def _present(row: Mapping[str, Any], entity: str, key: str, columns: list[str], safe: bool) -> dict[str, Any]:
        shown: dict[str, Any] = {"PrimaryKey": row[key], "EntityName": entity}
        for column in columns:
            shown[column.replace("/", "_") if safe else column] = row.get(column, "")
        return shown
