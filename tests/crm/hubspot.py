"""HubSpot CRM v3 objects API (contacts, companies), as documented.

- ``GET /crm/v3/objects/{contacts|companies}?limit=&after=&properties=&archived=``
- ``Authorization: Bearer <private app token>``; otherwise 401 ``INVALID_AUTHENTICATION``.
- ``limit`` defaults to 10; above 100 HubSpot answers with at most 100 (clamped, as observed by clients);
  the largest limit asked for is kept in ``max_limit_requested``.
- Properties are opt-in: without ``properties=`` only the default ones come back; asked-for properties that
  a record lacks come back as ``null``.
- Cursor paging: ``paging.next.after`` (+ ``link``) while more records follow; no ``paging`` on the last page.
- Every answer carries the ``X-HubSpot-RateLimit-*`` headers; a 429 has HubSpot's error body.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, int_param

DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
}
RATE_HEADERS = {
    "X-HubSpot-RateLimit-Max": "190",
    "X-HubSpot-RateLimit-Remaining": "189",
    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
}


class HubSpotEmulator(EmulatedCrm):
    """HubSpot with the given contacts and companies: each a dict of properties (``hs_object_id`` = id)."""

    MAX_LIMIT = 100

    def __init__(
        self,
        *,
        token: str,
        contacts: Iterable[Mapping[str, Any]] = (),
        companies: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.token = token
        self.objects = {
            "contacts": [self._record(p, 1000 + i) for i, p in enumerate(contacts)],
            "companies": [self._record(p, 5000 + i) for i, p in enumerate(companies)],
        }
        self.max_limit_requested = 0
        super().__init__()

    @staticmethod
    def _record(properties: Mapping[str, Any], default_id: int) -> dict[str, Any]:
        record_id = str(properties.get("hs_object_id") or default_id)
        stamp = "2024-01-10T08:30:15.234Z"
        props = {"hs_object_id": record_id, "createdate": stamp, "lastmodifieddate": stamp, **properties}
        return {"id": record_id, "properties": props, "createdAt": stamp, "updatedAt": stamp, "archived": False}

    def routes(self) -> list[Route]:
        return [Route("/crm/v3/objects/{object_type}", self.list_objects)]

    def unauthorized(self) -> Response:
        return self.json(
            {
                "status": "error",
                "message": "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
                "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "correlationId": str(uuid.uuid4()),
                "category": "INVALID_AUTHENTICATION",
            },
            status=401,
        )

    def rate_limited(self, fault: Fault) -> Response:
        return self.json(
            {
                "status": "error",
                "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()),
                "policyName": "SECONDLY",
            },
            status=429,
            headers={**RATE_HEADERS, "X-HubSpot-RateLimit-Remaining": "0", **fault.headers},
        )

    def server_error(self, status: int) -> Response:
        body = {"status": "error", "message": "internal error", "correlationId": str(uuid.uuid4())}
        return self.json(body, status=status)

    async def list_objects(self, request: Request) -> Response:
        recorded = await self.record(request)
        object_type = request.path_params["object_type"]
        if recorded.headers.get("authorization") != f"Bearer {self.token}":
            return self.unauthorized()
        if object_type not in self.objects:
            return self.json(
                {
                    "status": "error",
                    "message": f"Unable to infer object type from: {object_type}",
                    "category": "OBJECT_NOT_FOUND",
                    "correlationId": str(uuid.uuid4()),
                },
                status=400,
            )
        limit = int_param(recorded.query, "limit", 10)
        after = int_param(recorded.query, "after", 0)
        if limit is None or after is None or limit < 1:
            return self.json(
                {
                    "status": "error",
                    "message": "Invalid input",
                    "category": "VALIDATION_ERROR",
                    "correlationId": str(uuid.uuid4()),
                },
                status=400,
            )
        self.max_limit_requested = max(self.max_limit_requested, limit)
        limit = min(limit, self.MAX_LIMIT)
        wanted = recorded.query.get("properties")
        names = wanted.split(",") if wanted else list(DEFAULT_PROPERTIES[object_type])
        records = self.objects[object_type]
        page = [self._present(r, names) for r in records[after : after + limit]]
        payload: dict[str, Any] = {"results": page}
        if after + limit < len(records):
            next_after = str(after + limit)
            link = f"{request.base_url}crm/v3/objects/{object_type}?limit={limit}&after={next_after}"
            payload["paging"] = {"next": {"after": next_after, "link": link}}
        return await self.respond(payload, headers=RATE_HEADERS)

    @staticmethod
    def _present(record: dict[str, Any], names: list[str]) -> dict[str, Any]:
        props = record["properties"]
        always = ("hs_object_id", "createdate", "lastmodifieddate")
        shown = {name: props.get(name) for name in names} | {k: props[k] for k in always if k in props}
        return {**record, "properties": shown}
