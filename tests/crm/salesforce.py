"""Salesforce REST API (SOQL query resource) and its OAuth token endpoint, as documented.

- ``POST /services/oauth2/token`` (form): ``grant_type=client_credentials`` with ``client_id`` and
  ``client_secret`` answers ``access_token``, ``instance_url``, ``id``, ``token_type``, ``issued_at``,
  ``signature`` (no ``expires_in``: the session lasts until Salesforce ends it); bad credentials give
  400 ``{"error": "invalid_client", "error_description": "invalid client credentials"}``.
- ``GET /services/data/vXX.X/query?q=SELECT ... FROM Contact|Account|Lead [WHERE Field = value]`` with
  ``Authorization: Bearer <token>``; the answer is ``{totalSize, done, nextRecordsUrl?, records[]}``, every
  record with ``attributes {type, url}`` and only the fields selected (relationship fields such as
  ``Account.Name`` as nested objects, or ``null``).
- ``GET /services/data/vXX.X/query/<locator>-<offset>``: the next batch (``nextRecordsUrl`` is relative and is
  followed without parameters) until ``done`` is true.
- Batch size from ``Sforce-Query-Options: batchSize=N`` (default 2,000; below 200 or above 2,000 it is
  brought into range); the sizes asked for are kept in ``batch_sizes``.
- Errors are a JSON array of ``{message, errorCode}``: 401 ``INVALID_SESSION_ID``, 400 ``INVALID_FIELD`` for a
  column the object does not have, 400 ``MALFORMED_QUERY``, 404 ``NOT_FOUND`` for an API version that does not
  exist. When the org's API allowance is used up every data request gets 403 ``REQUEST_LIMIT_EXCEEDED``
  (Salesforce does not answer 429). ``Sforce-Limit-Info: api-usage=N/M`` on every answer.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, RecordedRequest

# Standard fields of the three objects (Salesforce field reference), and the relationship fields a query may
# reach through (Account.Name, Owner.Name).
FIELDS: dict[str, frozenset[str]] = {
    "Contact": frozenset({
        "Id", "Name", "FirstName", "LastName", "Salutation", "Title", "Email", "Phone", "MobilePhone", "HomePhone",
        "OtherPhone", "AssistantPhone", "Fax", "AccountId", "OwnerId", "Department",
    }),
    "Account": frozenset({"Id", "Name", "AccountNumber", "Phone", "Fax", "Website", "OwnerId", "Type", "Industry"}),
    "Lead": frozenset({
        "Id", "Name", "FirstName", "LastName", "Salutation", "Title", "Company", "Email", "Phone", "MobilePhone",
        "Fax", "IsConverted", "OwnerId", "Status",
    }),
}  # fmt: skip
RELATIONSHIPS: dict[str, dict[str, tuple[str, frozenset[str]]]] = {
    "Contact": {"Account": ("Account", frozenset({"Name", "AccountNumber"})), "Owner": ("User", frozenset({"Name"}))},
    "Account": {"Owner": ("User", frozenset({"Name"}))},
    "Lead": {"Owner": ("Name", frozenset({"Name"}))},
}
MIN_VERSION = 31.0
_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)(?:\s+WHERE\s+(?P<where>.+?))?\s*$", re.I | re.S
)
_CONDITION = re.compile(r"^(?P<field>\w+)\s*=\s*(?P<value>true|false|'[^']*')$", re.I)


class SalesforceEmulator(EmulatedCrm):
    """An org with Contact, Account and Lead records (dicts of field values; relationships as nested dicts)."""

    def __init__(
        self,
        *,
        client_id: str = "",
        client_secret: str = "",
        static_tokens: Iterable[str] = (),
        contacts: Iterable[Mapping[str, Any]] = (),
        accounts: Iterable[Mapping[str, Any]] = (),
        leads: Iterable[Mapping[str, Any]] = (),
        api_allowance: int = 100_000,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.tokens: set[str] = set(static_tokens)
        self.objects = {
            "Contact": self._with_ids(contacts, "003"),
            "Account": self._with_ids(accounts, "001"),
            "Lead": self._with_ids(leads, "00Q"),
        }
        self.api_allowance = api_allowance
        self.api_used = 0
        self.batch_sizes: list[int] = []
        self.token_requests = 0
        self._serial = itertools.count(1)
        self._cursors: dict[str, tuple[list[dict[str, Any]], int, str]] = {}
        super().__init__()

    @staticmethod
    def _with_ids(records: Iterable[Mapping[str, Any]], prefix: str) -> list[dict[str, Any]]:
        rows = []
        for i, record in enumerate(records):
            row = dict(record)
            row.setdefault("Id", f"{prefix}5g00000{i:08d}AAA")
            rows.append(row)
        return rows

    def routes(self) -> list[Route]:
        return [
            Route("/services/oauth2/token", self.token, methods=["POST"]),
            Route("/services/data/{version}/query", self.query),
            Route("/services/data/{version}/query/{locator}", self.more),
        ]

    # ------------------------------------------------------------------------------------------------ auth

    def revoke_tokens(self) -> None:
        """End every session (as when it times out): the next data request gets 401."""
        self.tokens.clear()

    async def token(self, request: Request) -> Response:
        recorded = await self.record(request)
        form = recorded.form()
        self.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            return self.json({"error": "unsupported_grant_type", "error_description": "grant type not supported"},
                             status=400)  # fmt: skip
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return self.json({"error": "invalid_client", "error_description": "invalid client credentials"},
                             status=400)  # fmt: skip
        token = f"00D5g000000abcd!AR8AQ{next(self._serial):04d}secret"
        self.tokens.add(token)
        base = str(request.base_url).rstrip("/")
        return self.json({
            "access_token": token,
            "signature": "nUFHwtfIGLKDTHcLWmDBG8frv0t+HQGl/iCZFIQUarE=",
            "token_format": "opaque",
            "instance_url": base,
            "id": f"{base}/id/00D5g000000abcdEAA/0055g00000XYZabAAH",
            "token_type": "Bearer",
            "issued_at": "1764000000000",
        })  # fmt: skip

    def _authorized(self, request: RecordedRequest) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and token in self.tokens

    def unauthorized(self) -> Response:
        return self.json([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], status=401)

    def rate_limited(self, fault: Fault) -> Response:
        return self.json(
            [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
            status=403,
            headers={"Sforce-Limit-Info": f"api-usage={self.api_allowance}/{self.api_allowance}"},
        )

    def server_error(self, status: int) -> Response:
        return self.json(
            [{"message": "An unexpected error occurred.", "errorCode": "UNKNOWN_EXCEPTION"}], status=status
        )

    # --------------------------------------------------------------------------------------------- queries

    async def _admit(self, request: Request) -> RecordedRequest | Response:
        recorded = await self.record(request)
        if not self._authorized(recorded):
            return self.unauthorized()
        version = request.path_params["version"]
        if not re.fullmatch(r"v\d+\.0", version) or float(version[1:]) < MIN_VERSION:
            return self.json([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
                             status=404)  # fmt: skip
        if self.api_used >= self.api_allowance:
            return self.rate_limited(Fault.rate_limit())
        self.api_used += 1
        return recorded

    async def query(self, request: Request) -> Response:
        recorded = await self._admit(request)
        if isinstance(recorded, Response):
            return recorded
        soql = recorded.query.get("q", "")
        parsed = _parse(soql)
        if isinstance(parsed, str):
            return self.json([{"message": parsed, "errorCode": "MALFORMED_QUERY"}], status=400)
        sobject, fields, condition = parsed
        problem = _check_fields(sobject, fields)
        if problem:
            return self.json([{"message": problem, "errorCode": "INVALID_FIELD"}], status=400)
        rows = [r for r in self.objects[sobject] if condition is None or _matches(r, condition)]
        size = _batch_size(recorded.headers.get("sforce-query-options", ""))
        self.batch_sizes.append(size)
        shaped = [_shape(sobject, r, fields, request.path_params["version"]) for r in rows]
        locator = f"01g5g00000{next(self._serial):06d}AAA"
        self._cursors[locator] = (shaped, size, request.path_params["version"])
        return await self._batch(locator, 0)

    async def more(self, request: Request) -> Response:
        recorded = await self._admit(request)
        if isinstance(recorded, Response):
            return recorded
        if recorded.query:
            return self.json([{"message": "nextRecordsUrl takes no parameters", "errorCode": "MALFORMED_QUERY"}],
                             status=400)  # fmt: skip
        locator, _, offset = request.path_params["locator"].rpartition("-")
        if locator not in self._cursors or not offset.isdigit():
            return self.json([{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}], status=400)
        return await self._batch(locator, int(offset))

    async def _batch(self, locator: str, start: int) -> Response:
        rows, size, version = self._cursors[locator]
        done = start + size >= len(rows)
        payload: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": rows[start : start + size]}
        if not done:
            payload["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}-{start + size}"
        usage = {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.api_allowance}"}
        return await self.respond(payload, headers=usage)


def _parse(soql: str) -> tuple[str, list[str], tuple[str, Any] | None] | str:
    """``(object, fields, condition)`` of a simple SOQL query, or the MALFORMED_QUERY message."""
    match = _SOQL.match(soql)
    if not match:
        return f"unexpected token: '{soql[:40]}'"
    sobject = match.group("object")
    if sobject not in FIELDS:
        return f"sObject type '{sobject}' is not supported."
    fields = [f.strip() for f in match.group("fields").split(",")]
    if any(not re.fullmatch(r"\w+(\.\w+)?", f) for f in fields):
        return "unexpected token in the field list"
    condition = None
    if match.group("where"):
        cond = _CONDITION.match(match.group("where").strip())
        if not cond:
            return f"unexpected token: '{match.group('where')}'"
        raw = cond.group("value")
        value: Any = raw.strip("'") if raw.startswith("'") else raw.lower() == "true"
        condition = (cond.group("field"), value)
    return sobject, fields, condition


def _check_fields(sobject: str, fields: list[str]) -> str | None:
    for field in fields:
        head, _, sub = field.partition(".")
        relation = RELATIONSHIPS[sobject].get(head)
        known = sub in relation[1] if sub and relation else (not sub and head in FIELDS[sobject])
        if not known:
            return (
                f"\nSELECT {field} FROM {sobject}\n       ^\nERROR at Row:1:Column:8\nNo such column '{field}' on "
                f"entity '{sobject}'. If you are attempting to use a custom field, be sure to append the '__c' after "
                f"the custom field name. Please reference your WSDL or the describe call for the appropriate names."
            )
    return None


def _matches(row: Mapping[str, Any], condition: tuple[str, Any]) -> bool:
    field, value = condition
    return row.get(field, False) == value


def _batch_size(options: str) -> int:
    match = re.search(r"batchSize=(\d+)", options)
    size = int(match.group(1)) if match else 2000
    return max(200, min(size, 2000))


def _shape(sobject: str, row: Mapping[str, Any], fields: list[str], version: str) -> dict[str, Any]:
    """The record as the query answer holds it: attributes first, then the selected fields only."""
    out: dict[str, Any] = {
        "attributes": {"type": sobject, "url": f"/services/data/{version}/sobjects/{sobject}/{row['Id']}"}
    }
    for field in fields:
        head, _, sub = field.partition(".")
        if not sub:
            out[head] = row.get(head)
            continue
        related = row.get(head)
        if related is None:
            out.setdefault(head, None)
            continue
        target = RELATIONSHIPS[sobject][head][0]
        nested = out.get(head) or {"attributes": {"type": target, "url": f"/services/data/{version}/sobjects/{target}"}}
        nested[sub] = related.get(sub)
        out[head] = nested
    return out
