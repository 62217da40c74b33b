"""Insightly API v3.1 (Contacts, Organisations, Leads), as documented.

- ``GET /v3.1/{Contacts|Organisations|Leads}?skip=&top=`` (paths are case-insensitive, as on the real server).
- HTTP Basic with the API key as user name: both base64("KEY:") and base64("KEY") are accepted, any password.
- A bare JSON array, no envelope; the last page is the one shorter than ``top``.
- ``top`` defaults to 100 and is capped at 500 (the largest asked for is kept in ``max_top_requested``).
- ``X-RateLimit-Limit`` / ``X-RateLimit-Remaining`` on every answer; 429 with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, RecordedRequest, int_param

RESOURCES = {"contacts": "contacts", "organisations": "organisations", "leads": "leads"}


class InsightlyEmulator(EmulatedCrm):
    """Insightly with the given raw records (UPPER_SNAKE field names, as the API sends them)."""

    MAX_TOP = 500

    def __init__(
        self,
        *,
        api_key: str,
        contacts: Iterable[Mapping[str, Any]] = (),
        organisations: Iterable[Mapping[str, Any]] = (),
        leads: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.api_key = api_key
        self.resources = {
            "contacts": [dict(r) for r in contacts],
            "organisations": [dict(r) for r in organisations],
            "leads": [dict(r) for r in leads],
        }
        self.max_top_requested = 0
        self.remaining = 100_000
        super().__init__()

    def routes(self) -> list[Route]:
        return [Route("/v3.1/{resource}", self.list_resource)]

    def authorized(self, request: RecordedRequest) -> bool:
        """API key as the user name; a password (or none, or no colon at all) is ignored."""
        credentials = request.basic_credentials()
        return credentials is not None and credentials.partition(":")[0] == self.api_key

    def unauthorized(self) -> Response:
        return self.json({"Message": "Authorization has been denied for this request."}, status=401)

    def rate_limited(self, fault: Fault) -> Response:
        headers = {"X-RateLimit-Limit": "100000", "X-RateLimit-Remaining": "0", **fault.headers}
        return self.json({"Message": "API calls quota exceeded"}, status=429, headers=headers)

    async def list_resource(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not self.authorized(recorded):
            return self.unauthorized()
        resource = RESOURCES.get(request.path_params["resource"].lower())
        if resource is None:
            return self.json({"Message": "No HTTP resource was found that matches the request URI."}, status=404)
        skip = int_param(recorded.query, "skip", 0)
        top = int_param(recorded.query, "top", 100)
        if skip is None or top is None or skip < 0 or top < 1:
            return self.json({"Message": "The request is invalid."}, status=400)
        self.max_top_requested = max(self.max_top_requested, top)
        top = min(top, self.MAX_TOP)
        self.remaining -= 1
        headers = {"X-RateLimit-Limit": "100000", "X-RateLimit-Remaining": str(self.remaining)}
        return await self.respond(self.resources[resource][skip : skip + top], headers=headers)
