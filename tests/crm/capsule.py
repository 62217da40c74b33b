"""Capsule CRM API v2 parties, as documented (developer.capsulecrm.com/v2/overview/...).

- ``GET /api/v2/parties?page=&perPage=``: people and organisations in one list under ``parties``; a person has
  ``firstName``/``lastName``/``jobTitle`` and ``organisation`` (``null`` or ``{id, name, pictureURL}``), an
  organisation ``name``; both have ``phoneNumbers`` ``[{id, type, number}]`` and ``emailAddresses``.
- ``Authorization: Bearer <token>``, else 401 ``{"message": "authentication failed"}`` (body shape assumed).
- 50 per page by default, "up to 100 with the ?perPage parameter": more is clamped to 100 here (the largest
  asked for is kept in ``max_per_page_requested``). Page numbers start at 1.
- The next page is in an RFC 8288 ``Link`` header, ``rel="next"`` (with ``rel="prev"`` after page 1); the
  last page has no ``rel="next"``.
- ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (epoch seconds) on every answer; over the limit a 429 with
  the same headers and ``{"error": "rate limit reached"}``, no ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, int_param

HOURLY_LIMIT = 4000


class CapsuleEmulator(EmulatedCrm):
    """Capsule with the given parties (raw, as the API sends them); ``clock`` gives epoch seconds for resets."""

    DEFAULT_PER_PAGE = 50
    MAX_PER_PAGE = 100

    def __init__(
        self, *, token: str, parties: Iterable[Mapping[str, Any]] = (), clock: Callable[[], float] | None = None
    ) -> None:
        self.token = token
        self.parties = [dict(p) for p in parties]
        self.max_per_page_requested = 0
        self.remaining = HOURLY_LIMIT
        self.clock = clock or (lambda: 1_900_000_000.0)
        super().__init__()

    def routes(self) -> list[Route]:
        return [Route("/api/v2/parties", self.list_parties)]

    def rate_headers(self, remaining: int) -> dict[str, str]:
        """The headers Capsule sends on every answer."""
        reset = int(self.clock()) + 60
        return {"X-RateLimit-Limit": str(HOURLY_LIMIT), "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(reset)}  # fmt: skip

    def unauthorized(self) -> Response:
        return self.json({"message": "authentication failed"}, status=401)

    def rate_limited(self, fault: Fault) -> Response:
        headers = {**self.rate_headers(0), **fault.headers}
        return self.json({"error": "rate limit reached"}, status=429, headers=headers)

    def server_error(self, status: int) -> Response:
        return self.json({"message": "An unexpected error occurred"}, status=status)

    async def list_parties(self, request: Request) -> Response:
        recorded = await self.record(request)
        if recorded.headers.get("authorization") != f"Bearer {self.token}":
            return self.unauthorized()
        page = int_param(recorded.query, "page", 1)
        per_page = int_param(recorded.query, "perPage", self.DEFAULT_PER_PAGE)
        if page is None or per_page is None or page < 1 or per_page < 1:
            return self.json({"message": "page and perPage must be positive integers"}, status=400)
        self.max_per_page_requested = max(self.max_per_page_requested, per_page)
        per_page = min(per_page, self.MAX_PER_PAGE)
        start = (page - 1) * per_page
        self.remaining -= 1
        headers = self.rate_headers(self.remaining)
        links = []
        base = f"{request.base_url}api/v2/parties"
        if start + per_page < len(self.parties):
            links.append(f'<{base}?page={page + 1}&perPage={per_page}>; rel="next"')
        if page > 1:
            links.append(f'<{base}?page={page - 1}&perPage={per_page}>; rel="prev"')
        if links:
            headers["Link"] = ", ".join(links)
        return await self.respond({"parties": self.parties[start : start + per_page]}, headers=headers)
