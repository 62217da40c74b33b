"""Copper Developer API v1 search endpoints (people, companies, leads), as documented.

- ``POST /developer_api/v1/{people|companies|leads}/search`` with a JSON body: ``page_number`` (from 1, default
  1), ``page_size`` (default 20, 1 to 200: more is refused with 422 here, the exact answer is not documented),
  ``sort_by`` (only the documented fields), ``sort_direction`` (``asc``/``desc``).
- Three headers, all required: ``X-PW-AccessToken``, ``X-PW-Application: developer_api``, ``X-PW-UserEmail``
  (the owner of the key); otherwise 401 (body shape assumed).
- A bare JSON array; ``X-PW-TOTAL`` is "an upper bound of the total number of records" (sent exact here, or
  padded with ``total_padding``); the last page is shorter than ``page_size``.
- 429 when over the limit; no rate-limit headers are documented.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, RecordedRequest

SORT_FIELDS = {
    "people": {"name", "first_name", "last_name", "title", "email", "phone", "date_modified", "date_created",
               "city", "state", "country", "zip"},
    "companies": {"name", "phone", "date_modified", "date_created", "city", "state", "country", "zip"},
    "leads": {"name", "first_name", "last_name", "company_name", "title", "value", "email", "phone",
              "date_modified", "date_created", "city", "state", "country", "zip", "inactive_days"},
}  # fmt: skip


class CopperEmulator(EmulatedCrm):
    """Copper with the given people, companies and leads (raw, as the API sends them)."""

    MAX_PAGE_SIZE = 200

    def __init__(
        self,
        *,
        api_key: str,
        email: str,
        people: Iterable[Mapping[str, Any]] = (),
        companies: Iterable[Mapping[str, Any]] = (),
        leads: Iterable[Mapping[str, Any]] = (),
        total_padding: int = 0,
    ) -> None:
        self.api_key = api_key
        self.email = email
        self.entities = {
            "people": [dict(r) for r in people],
            "companies": [dict(r) for r in companies],
            "leads": [dict(r) for r in leads],
        }
        self.total_padding = total_padding
        super().__init__()

    def routes(self) -> list[Route]:
        return [Route("/developer_api/v1/{entity}/search", self.search, methods=["POST"])]

    def authorized(self, request: RecordedRequest) -> bool:
        """All three ``X-PW-*`` headers, with the key's owner's e-mail."""
        headers = request.headers
        return (
            headers.get("x-pw-accesstoken") == self.api_key
            and headers.get("x-pw-application") == "developer_api"
            and headers.get("x-pw-useremail", "").lower() == self.email.lower()
        )

    @staticmethod
    def error(status: int, message: str) -> Response:
        """Copper's error body."""
        return EmulatedCrm.json({"success": False, "status": status, "message": message}, status=status)

    def unauthorized(self) -> Response:
        return self.error(401, "Invalid User or API key")

    def rate_limited(self, fault: Fault) -> Response:
        response = self.error(429, "Rate limit exceeded")
        response.headers.update(fault.headers)
        return response

    def server_error(self, status: int) -> Response:
        return self.error(status, "Internal Server Error")

    async def search(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not self.authorized(recorded):
            return self.unauthorized()
        entity = request.path_params["entity"]
        if entity not in self.entities:
            return self.error(404, "Resource not found")
        if "application/json" not in recorded.headers.get("content-type", ""):
            return self.error(400, "Content-Type must be application/json")
        body = recorded.json() if recorded.body else {}
        page = body.get("page_number", 1)
        size = body.get("page_size", 20)
        if not isinstance(page, int) or not isinstance(size, int) or page < 1:
            return self.error(422, "page_number and page_size must be integers")
        if not 1 <= size <= self.MAX_PAGE_SIZE:
            return self.error(422, "page_size must be between 1 and 200")
        if body.get("sort_by", "name") not in SORT_FIELDS[entity]:
            return self.error(422, f"Invalid sort_by: {body.get('sort_by')}")
        if body.get("sort_direction", "asc") not in ("asc", "desc"):
            return self.error(422, "sort_direction must be asc or desc")
        records = self.entities[entity]
        start = (page - 1) * size
        headers = {"X-PW-TOTAL": str(len(records) + self.total_padding)}
        return await self.respond(records[start : start + size], headers=headers)
