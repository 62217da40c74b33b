"""An in-house JSON API, as the generic REST preset meets them: one endpoint, any of six paging styles.

==============  ===============================================================================================
style           request and answer
==============  ===============================================================================================
``none``        ``GET /api/v1/contacts`` → a bare array of every record
``offset``      ``?offset=&limit=`` → ``{"data": [...], "meta": {"total": N}}``; ends on a short page
``page``        ``?page=&per_page=`` → ``{"data": [...], "has_more": bool}``
``cursor``      ``?cursor=&limit=`` → ``{"results": [...], "paging": {"next_cursor": "..." | null}}``
``next_link``   ``?limit=`` → ``{"value": [...], "links": {"next": "/api/v1/contacts?after=...&limit=..." }}``
``link_header`` ``?page=&per_page=`` → a bare array and ``Link: <...>; rel="next"`` while more follow
==============  ===============================================================================================

Page sizes above ``max_size`` get a 400, as strict APIs do. Auth is one of none, bearer, basic, an API key in a
header or in the query; failures get ``{"error": "unauthorized", "message": ...}`` with 401.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, RecordedRequest, int_param

SECRET = "gr-3f9a1c7e5d2b4a6c8e0f"


class GenericRestApi(EmulatedCrm):
    """``/api/v1/contacts`` with the given paging ``style`` and ``auth`` (``SECRET`` is the token or password)."""

    def __init__(self, records: Iterable[Mapping[str, Any]], *, style: str, auth: str, max_size: int = 100) -> None:
        self.records = [dict(r) for r in records]
        self.style = style
        self.auth = auth
        self.max_size = max_size
        super().__init__()

    def routes(self) -> list[Route]:
        return [Route("/api/v1/contacts", self.contacts)]

    def unauthorized(self) -> Response:
        return self.json({"error": "unauthorized", "message": "Invalid credentials"}, status=401)

    def authorized(self, request: RecordedRequest) -> bool:
        """The auth check of the configured scheme."""
        if self.auth == "none":
            return True
        if self.auth == "bearer":
            return request.headers.get("authorization") == f"Bearer {SECRET}"
        if self.auth == "basic":
            return request.basic_credentials() == f"api-user:{SECRET}"
        if self.auth == "api_key_header":
            return request.headers.get("x-api-key") == SECRET
        return request.query.get("api_key") == SECRET

    async def contacts(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not self.authorized(recorded):
            return self.unauthorized()
        size_name = "per_page" if self.style in ("page", "link_header") else "limit"
        size = int_param(recorded.query, size_name, 25)
        if size is None or not 1 <= size <= self.max_size:
            return self.json({"error": "bad_request", "message": f"{size_name} must be 1-{self.max_size}"}, status=400)
        page: Callable[[Request, dict[str, str], int], Awaitable[Response]] = getattr(self, f"_{self.style}")
        return await page(request, recorded.query, size)

    async def _none(self, request: Request, query: dict[str, str], size: int) -> Response:
        return await self.respond(self.records)

    async def _offset(self, request: Request, query: dict[str, str], size: int) -> Response:
        start = int_param(query, "offset", 0) or 0
        return await self.respond({"data": self.records[start : start + size], "meta": {"total": len(self.records)}})

    async def _page(self, request: Request, query: dict[str, str], size: int) -> Response:
        start = ((int_param(query, "page", 1) or 1) - 1) * size
        chunk = self.records[start : start + size]
        return await self.respond({"data": chunk, "has_more": start + size < len(self.records)})

    async def _cursor(self, request: Request, query: dict[str, str], size: int) -> Response:
        start = _decode(query["cursor"]) if query.get("cursor") else 0
        more = start + size < len(self.records)
        paging = {"next_cursor": _encode(start + size) if more else None}
        return await self.respond({"results": self.records[start : start + size], "paging": paging})

    async def _next_link(self, request: Request, query: dict[str, str], size: int) -> Response:
        start = _decode(query["after"]) if query.get("after") else 0
        links: dict[str, str] = {"self": str(request.url)}
        if start + size < len(self.records):
            links["next"] = f"/api/v1/contacts?after={_encode(start + size)}&limit={size}"
        return await self.respond({"value": self.records[start : start + size], "links": links})

    async def _link_header(self, request: Request, query: dict[str, str], size: int) -> Response:
        page = int_param(query, "page", 1) or 1
        start = (page - 1) * size
        headers = {}
        if start + size < len(self.records):
            key = f"&api_key={SECRET}" if self.auth == "api_key_query" else ""  # some APIs echo the key in links
            headers["Link"] = f'<{request.base_url}api/v1/contacts?page={page + 1}&per_page={size}{key}>; rel="next"'
        return await self.respond(self.records[start : start + size], headers=headers)


def _encode(index: int) -> str:
    return base64.urlsafe_b64encode(f"pos:{index}".encode()).decode()


def _decode(cursor: str) -> int:
    return int(base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")[2])
