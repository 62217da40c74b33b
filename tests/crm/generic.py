"""One emulated server for each remaining pagination style, each shaped after a documented CRM API.

==================  ============  ===========================================================================
class               style         modelled on
==================  ============  ===========================================================================
``DataverseCrm``    next_link     Dynamics 365: ``Prefer: odata.maxpagesize``, ``value``, ``@odata.nextLink``
``SalesforceCrm``   next_link     SOQL query: ``totalSize``/``done``/relative ``nextRecordsUrl``, batchSize
``CapsuleCrm``      link_header   Capsule v2: ``page``/``perPage`` (max 100), ``Link: <...>; rel="next"``
``ZohoCrm``         page_token    Zoho v8: ``page``/``per_page`` (max 200), ``info.more_records``, then
                                  ``page_token`` beyond 2,000 records; 204 for an empty module
``FreshsalesCrm``   page          Freshsales views: ``page``/``per_page``, ``meta.total_pages``/``meta.total``
``CopperCrm``       page (body)   Copper search: POST ``page_number``/``page_size`` (max 200), bare array,
                                  ``X-PW-TOTAL`` header, three ``X-PW-*`` auth headers
``CloseCrm``        offset        Close: ``_skip``/``_limit`` (max 100, more is a 400), ``has_more``
==================  ============  ===========================================================================

Each takes its records (raw, as the vendor would send them) and an ``authorized`` check on the request.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import Check, EmulatedCrm, RecordedRequest, int_param


class _Generic(EmulatedCrm):
    def __init__(self, records: Iterable[Mapping[str, Any]], *, authorized: Check | None = None) -> None:
        self.records = [dict(r) for r in records]
        self.check: Check = authorized or (lambda _request: True)
        self.page_sizes: list[int] = []  # the page size each data request asked for
        super().__init__()

    async def admit(self, request: Request) -> RecordedRequest | Response:
        """Record the request; the vendor's 401 when the auth check fails."""
        recorded = await self.record(request)
        return recorded if self.check(recorded) else self.unauthorized()


class DataverseCrm(_Generic):
    """``GET /api/data/v9.2/contacts``; page size from ``Prefer: odata.maxpagesize=N`` (default/max 5,000)."""

    MAX = 5000

    def routes(self) -> list[Route]:
        return [Route("/api/data/v9.2/contacts", self.contacts)]

    def unauthorized(self) -> Response:
        return self.json(
            {"error": {"code": "0x80072560", "message": "The user is not a member of the organization."}}, status=401
        )

    async def contacts(self, request: Request) -> Response:
        recorded = await self.admit(request)
        if isinstance(recorded, Response):
            return recorded
        prefer = recorded.headers.get("prefer", "")
        size = self.MAX
        if prefer.startswith("odata.maxpagesize="):
            size = min(int(prefer.partition("=")[2]), self.MAX)
        self.page_sizes.append(size)
        start = int(recorded.query.get("$skiptoken", "0"))
        payload: dict[str, Any] = {
            "@odata.context": f"{request.base_url}api/data/v9.2/$metadata#contacts",
            "value": self.records[start : start + size],
        }
        if start + size < len(self.records):
            payload["@odata.nextLink"] = f"{request.base_url}api/data/v9.2/contacts?$skiptoken={start + size}"
        return await self.respond(payload, headers={"Preference-Applied": f"odata.maxpagesize={size}"})


class SalesforceCrm(_Generic):
    """``GET /services/data/v60.0/query?q=...`` then the relative ``nextRecordsUrl`` until ``done``."""

    def routes(self) -> list[Route]:
        return [
            Route("/services/data/v60.0/query", self.query),
            Route("/services/data/v60.0/query/{locator}", self.more),
        ]

    def unauthorized(self) -> Response:
        return self.json([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], status=401)

    async def query(self, request: Request) -> Response:
        recorded = await self.admit(request)
        if isinstance(recorded, Response):
            return recorded
        if not recorded.query.get("q"):
            return self.json([{"message": "unexpected token", "errorCode": "MALFORMED_QUERY"}], status=400)
        options = recorded.headers.get("sforce-query-options", "")
        size = 2000
        if options.startswith("batchSize="):
            size = max(200, min(int(options.partition("=")[2]), 2000))
        self.page_sizes.append(size)
        return await self._batch(0, size)

    async def more(self, request: Request) -> Response:
        recorded = await self.admit(request)
        if isinstance(recorded, Response):
            return recorded
        _, _, rest = request.path_params["locator"].partition("-")
        start, _, size = rest.partition("x")
        return await self._batch(int(start), int(size))

    async def _batch(self, start: int, size: int) -> Response:
        done = start + size >= len(self.records)
        payload: dict[str, Any] = {
            "totalSize": len(self.records),
            "done": done,
            "records": self.records[start : start + size],
        }
        if not done:
            payload["nextRecordsUrl"] = f"/services/data/v60.0/query/01gD0000002HU6KIAW-{start + size}x{size}"
        return await self.respond(payload)


class CapsuleCrm(_Generic):
    """``GET /api/v2/parties?page=&perPage=`` (default 50, max 100); the next page in a ``Link`` header."""

    MAX = 100

    def routes(self) -> list[Route]:
        return [Route("/api/v2/parties", self.parties)]

    def unauthorized(self) -> Response:
        return self.json({"message": "authentication failed"}, status=401)

    async def parties(self, request: Request) -> Response:
        recorded = await self.admit(request)
        if isinstance(recorded, Response):
            return recorded
        page = int_param(recorded.query, "page", 1) or 1
        size = int_param(recorded.query, "perPage", 50) or 50
        self.page_sizes.append(size)
        if size > self.MAX:
            return self.json({"message": "perPage must be at most 100"}, status=400)
        start = (page - 1) * size
        headers = {}
        if start + size < len(self.records):
            headers["Link"] = f'<{request.base_url}api/v2/parties?page={page + 1}&perPage={size}>; rel="next"'
        return await self.respond({"parties": self.records[start : start + size]}, headers=headers)


class ZohoCrm(_Generic):
    """``GET /crm/v8/Contacts?fields=&page=&per_page=`` or ``page_token=``; ``Zoho-oauthtoken`` auth."""

    MAX = 200
    PAGE_LIMIT = 2000

    def routes(self) -> list[Route]:
        return [Route("/crm/v8/Contacts", self.contacts)]

    def unauthorized(self) -> Response:
        return self.json(
            {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}, status=401
        )

    def _error(self, code: str, message: str) -> Response:
        return self.json({"code": code, "details": {}, "message": message, "status": "error"}, status=400)

    async def contacts(self, request: Request) -> Response:
        recorded = await self.admit(request)
        if isinstance(recorded, Response):
            return recorded
        query = recorded.query
        if not query.get("fields"):
            return self._error("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing")
        size = int_param(query, "per_page", 200)
        if size is None or not 1 <= size <= self.MAX:
            return self._error("INVALID_DATA", "per_page must be between 1 and 200")
        self.page_sizes.append(size)
        if "page_token" in query:
            if "page" in query:
                return self._error("INVALID_DATA", "page and page_token cannot be used together")
            start = int(base64.b64decode(query["page_token"]).decode().partition(":")[2])
            page = start // size + 1
        else:
            page = int_param(query, "page", 1) or 1
            if page * size > self.PAGE_LIMIT:
                return self._error(
                    "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                    "cannot fetch more than 2000 records with page; use page_token",
                )
            start = (page - 1) * size
        chunk = self.records[start : start + size]
        if not chunk and start == 0:
            return await self.respond(None, status=204)
        more = start + size < len(self.records)
        token = base64.b64encode(f"tok:{start + size}".encode()).decode() if more else None
        info = {
            "per_page": size,
            "count": len(chunk),
            "page": page,
            "sort_by": "id",
            "sort_order": "desc",
            "more_records": more,
            "next_page_token": token,
            "previous_page_token": None,
            "page_token_expiry": "2030-01-01T00:00:00+00:00" if more else None,
        }
        return await self.respond({"data": chunk, "info": info})


class FreshsalesCrm(_Generic):
    """``GET /crm/sales/api/contacts/view/{id}?page=&per_page=``; ``meta.total_pages``; ``Token token=`` auth."""

    def routes(self) -> list[Route]:
        return [Route("/crm/sales/api/contacts/view/{view_id}", self.view)]

    def unauthorized(self) -> Response:
        return self.json({"login": "failed", "message": "Incorrect or expired API key"}, status=401)

    async def view(self, request: Request) -> Response:
        recorded = await self.admit(request)
        if isinstance(recorded, Response):
            return recorded
        page = int_param(recorded.query, "page", 1) or 1
        size = min(int_param(recorded.query, "per_page", 25) or 25, 100)
        self.page_sizes.append(size)
        total_pages = max(1, -(-len(self.records) // size))
        start = (page - 1) * size
        meta = {"total_pages": total_pages, "total": len(self.records)}
        return await self.respond({"contacts": self.records[start : start + size], "meta": meta})


class CopperCrm(_Generic):
    """``POST /developer_api/v1/people/search`` with ``page_number``/``page_size`` (max 200) in the body."""

    def routes(self) -> list[Route]:
        return [Route("/developer_api/v1/people/search", self.search, methods=["POST"])]

    def unauthorized(self) -> Response:
        return self.json({"success": False, "status": 401, "message": "Invalid User or API key"}, status=401)

    async def search(self, request: Request) -> Response:
        recorded = await self.admit(request)
        if isinstance(recorded, Response):
            return recorded
        body = recorded.json() if recorded.body else {}
        page = int(body.get("page_number", 1))
        size = int(body.get("page_size", 20))
        self.page_sizes.append(size)
        if size > 200:
            return self.json({"success": False, "status": 422, "message": "page_size must be <= 200"}, status=422)
        start = (page - 1) * size
        return await self.respond(self.records[start : start + size], headers={"X-PW-TOTAL": str(len(self.records))})


class CloseCrm(_Generic):
    """``GET /api/v1/contact/?_skip=&_limit=`` (max 100, a 400 above); ``{"data": [...], "has_more": bool}``."""

    MAX = 100

    def routes(self) -> list[Route]:
        return [Route("/api/v1/contact/", self.contacts)]

    async def contacts(self, request: Request) -> Response:
        recorded = await self.admit(request)
        if isinstance(recorded, Response):
            return recorded
        skip = int_param(recorded.query, "_skip", 0) or 0
        limit = int_param(recorded.query, "_limit", 100) or 100
        self.page_sizes.append(limit)
        if limit > self.MAX:
            return self.json({"error": "_limit is too large"}, status=400)
        chunk = self.records[skip : skip + limit]
        return await self.respond({"data": chunk, "has_more": skip + limit < len(self.records)})
