"""Microsoft Dynamics 365 / Dataverse Web API v9.2 and the Microsoft Entra token endpoint, as documented.

- ``POST /{tenant}/oauth2/v2.0/token`` (form): ``grant_type=client_credentials``, ``client_id``,
  ``client_secret`` and ``scope={environment URL}/.default`` answer ``{token_type: "Bearer", expires_in: 3599,
  ext_expires_in: 3599, access_token}``. Errors are ``{"error", "error_description": "AADSTS..."}``: 401
  ``invalid_client``, 400 ``invalid_scope`` (any other scope, e.g. a trailing slash or another environment),
  400 ``invalid_request`` for an unknown tenant.
- ``GET /api/data/v9.2/{contacts|accounts|leads}?$select=...&$filter=statecode eq N`` with
  ``Authorization: Bearer``; without a valid token 401 with an empty body and ``WWW-Authenticate``. A column
  the table does not have is a 400 ``Could not find a property named ...``. Every record has
  ``@odata.etag``; ``_x_value`` lookup columns carry
  ``@OData.Community.Display.V1.FormattedValue`` (the related record's name) only when the request says
  ``Prefer: odata.include-annotations="OData.Community.Display.V1.FormattedValue"`` (or ``"*"``).
- Paging: ``Prefer: odata.maxpagesize=N`` (default and maximum 5,000; a larger value is ignored), echoed in
  ``Preference-Applied``; the next page is the absolute ``@odata.nextLink`` (with ``$skiptoken``), absent on the
  last page. ``$skip`` is refused, as on the real service.
- Service protection: 429 with ``Retry-After`` and ``{"error": {"code": "0x80072322", "message": ...}}``.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, RecordedRequest

FORMATTED = "OData.Community.Display.V1.FormattedValue"
COLUMNS: dict[str, frozenset[str]] = {
    "contacts": frozenset({
        "contactid", "fullname", "firstname", "lastname", "jobtitle", "emailaddress1", "telephone1", "telephone2",
        "telephone3", "mobilephone", "fax", "business2", "home2", "company", "assistantphone", "managerphone",
        "callback", "pager", "_parentcustomerid_value", "_ownerid_value", "statecode", "modifiedon",
    }),
    "accounts": frozenset({
        "accountid", "name", "accountnumber", "telephone1", "telephone2", "telephone3", "fax", "emailaddress1",
        "websiteurl", "_ownerid_value", "statecode", "modifiedon",
    }),
    "leads": frozenset({
        "leadid", "fullname", "firstname", "lastname", "companyname", "jobtitle", "emailaddress1", "telephone1",
        "telephone2", "telephone3", "mobilephone", "fax", "pager", "_ownerid_value", "statecode", "modifiedon",
    }),
}  # fmt: skip
KEYS = {"contacts": "contactid", "accounts": "accountid", "leads": "leadid"}
ENTITY = {"contacts": "contact", "accounts": "account", "leads": "lead"}
MAX_PAGE = 5000


class DynamicsEmulator(EmulatedCrm):
    """A Dataverse environment and its Entra tenant (both on one address, as a test needs).

    Records are dicts of column values; a lookup is given as ``_parentcustomerid_value`` (a GUID) plus the
    related record's name under ``_parentcustomerid_value_name`` (served as the formatted-value annotation).
    """

    def __init__(
        self,
        *,
        tenant: str,
        client_id: str,
        client_secret: str,
        contacts: Iterable[Mapping[str, Any]] = (),
        accounts: Iterable[Mapping[str, Any]] = (),
        leads: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.tenant = tenant
        self.client_id = client_id
        self.client_secret = client_secret
        self.tables = {
            "contacts": _with_keys(contacts, "contactid"),
            "accounts": _with_keys(accounts, "accountid"),
            "leads": _with_keys(leads, "leadid"),
        }
        self.tokens: set[str] = set()
        self.scopes: list[str] = []
        self.page_sizes: list[int] = []
        self._serial = itertools.count(1)
        super().__init__()

    def routes(self) -> list[Route]:
        return [
            Route("/{tenant}/oauth2/v2.0/token", self.token, methods=["POST"]),
            Route("/api/data/v9.2/{table}", self.table),
        ]

    # ------------------------------------------------------------------------------------------------ auth

    async def token(self, request: Request) -> Response:
        recorded = await self.record(request)
        form = recorded.form()
        tenant = request.path_params["tenant"]
        if tenant != self.tenant:
            return self._aad(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return self._aad(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return self._aad(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        scope = form.get("scope", "")
        self.scopes.append(scope)
        if scope != f"{str(request.base_url).rstrip('/')}/.default":
            return self._aad(400, "invalid_scope", f"AADSTS70011: The provided value for scope {scope} is not valid.")
        token = f"eyJ0eXAiOiJKV1Qi.{next(self._serial):04d}.dataverse-secret"
        self.tokens.add(token)
        return self.json({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})

    def _aad(self, status: int, error: str, description: str) -> Response:
        return self.json({"error": error, "error_description": description, "error_codes": [int(description[6:13])],
                          "trace_id": str(uuid.uuid4())}, status=status)  # fmt: skip

    def revoke_tokens(self) -> None:
        """Make every access token invalid (as when it expires early)."""
        self.tokens.clear()

    def unauthorized(self) -> Response:
        challenge = f"Bearer authorization_uri=https://login.microsoftonline.com/{self.tenant}/oauth2/authorize"
        return Response(status_code=401, headers={"WWW-Authenticate": challenge})

    def rate_limited(self, fault: Fault) -> Response:
        error = {
            "code": "0x80072322",
            "message": "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
        }
        return self.json({"error": error}, status=429, headers=fault.headers)  # fmt: skip

    def _odata_error(self, status: int, message: str, code: str = "0x80060888") -> Response:
        return self.json({"error": {"code": code, "message": message}}, status=status)

    # ------------------------------------------------------------------------------------------------ data

    def _authorized(self, request: RecordedRequest) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and token in self.tokens

    async def table(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not self._authorized(recorded):
            return self.unauthorized()
        name = request.path_params["table"]
        if name not in self.tables:
            return self._odata_error(404, f"Resource not found for the segment '{name}'.", "0x8006088a")
        query = recorded.query
        if "$skip" in query:
            return self._odata_error(400, "The query parameter $skip is not supported", "0x0")
        columns = [c.strip() for c in query.get("$select", ",".join(sorted(COLUMNS[name]))).split(",")]
        unknown = next((c for c in columns if c not in COLUMNS[name]), None)
        if unknown:
            return self._odata_error(
                400, f"Could not find a property named '{unknown}' on type 'Microsoft.Dynamics.CRM.{ENTITY[name]}'."
            )
        rows = self._filtered(name, query.get("$filter", ""))
        if isinstance(rows, Response):
            return rows
        size, annotate, applied = _preferences(recorded.headers.get("prefer", ""))
        self.page_sizes.append(size)
        start = _offset(query.get("$skiptoken", ""))
        base = str(request.base_url)
        payload: dict[str, Any] = {
            "@odata.context": f"{base}api/data/v9.2/$metadata#{name}({','.join(columns)})",
            "value": [self._shape(name, row, columns, annotate) for row in rows[start : start + size]],
        }
        if start + size < len(rows):
            kept = "&".join(f"{k}={quote(v, safe=',')}" for k, v in query.items() if k != "$skiptoken")
            cookie = quote(f'<cookie pagenumber="{start // size + 2}" offset="{start + size}" istracking="False" />')
            payload["@odata.nextLink"] = f"{base}api/data/v9.2/{name}?{kept}&$skiptoken={cookie}"
        return await self.respond(payload, headers={"Preference-Applied": applied, "OData-Version": "4.0"})

    def _filtered(self, name: str, expression: str) -> list[dict[str, Any]] | Response:
        rows = self.tables[name]
        if not expression:
            return rows
        match = re.fullmatch(r"statecode eq (\d+)", expression.strip())
        if not match:
            return self._odata_error(400, f"Syntax error at position 0 in '{expression}'.", "0x80060888")
        return [r for r in rows if r.get("statecode", 0) == int(match.group(1))]

    def _shape(self, name: str, row: Mapping[str, Any], columns: list[str], annotate: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": f'W/"{7_220_000 + len(columns)}"'}
        for column in columns:
            out[column] = row.get(column)
            if column.startswith("_") and annotate and row.get(column):
                out[f"{column}@{FORMATTED}"] = row.get(f"{column}_name")
                out[f"{column}@Microsoft.Dynamics.CRM.lookuplogicalname"] = row.get(f"{column}_entity", "account")
        out[KEYS[name]] = row[KEYS[name]]
        return out


def _preferences(prefer: str) -> tuple[int, bool, str]:
    """Page size, whether to add formatted values, and the ``Preference-Applied`` header."""
    size, annotate, applied = MAX_PAGE, False, []
    for part in (p.strip() for p in prefer.split(",")):
        if part.startswith("odata.maxpagesize="):
            value = int(part.partition("=")[2])
            if 0 < value <= MAX_PAGE:
                size = value
                applied.append(part)
        elif part.startswith("odata.include-annotations="):
            wanted = part.partition("=")[2].strip('"')
            annotate = wanted in ("*", FORMATTED)
            applied.append(part)
    return size, annotate, ",".join(applied)


def _offset(skiptoken: str) -> int:
    match = re.search(r'offset="(\d+)"', unquote(skiptoken))
    return int(match.group(1)) if match else 0


def _with_keys(records: Iterable[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    prefix = {"contactid": 0x49B0BE2E, "accountid": 0x70BF4D48, "leadid": 0x5A37D173}[key]
    rows = []
    for i, record in enumerate(records):
        row = dict(record)
        row.setdefault(key, str(uuid.UUID(int=prefix << 96 | 0xD01C_11ED_B83E_0000_0000 | i)))
        rows.append(row)
    return rows
