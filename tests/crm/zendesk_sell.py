"""Zendesk Sell (Base CRM) Core API v2 contacts and leads, as documented.

- ``GET /v2/contacts?page=&per_page=[&is_organization=true|false]`` and ``GET /v2/leads?page=&per_page=``.
- ``Authorization: Bearer <token>``; a request without ``User-Agent`` is refused with 400 ``invalid_user_agent``.
- ``page`` starts at 1; ``per_page`` defaults to 25, maximum 100 (more is refused with 422 here: the exact
  answer is not documented).
- Envelope ``{"items": [{"data": {...}, "meta": {"type": "contact", "version": N}}], "meta": {"type":
  "collection", "count": N, "links": {"self", "first_page", "prev_page"?, "next_page"?}}}``: ``next_page`` only
  while more records follow (``next_link_style="null"`` sends ``null`` instead of leaving it out, and
  ``"none"`` never sends it, for the readings in which Sell has no next link at all).
- Errors ``{"errors": [{"error": {"code", "message", "details"}}], "meta": {"http_status", "logref"}}``; 429
  ``rate_limit_exceeded`` without rate-limit headers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, int_param

NextLinkStyle = Literal["omit", "null", "none"]


class ZendeskSellEmulator(EmulatedCrm):
    """Sell with the given contacts (people and organisations, by ``is_organization``) and leads."""

    DEFAULT_PER_PAGE = 25
    MAX_PER_PAGE = 100

    def __init__(
        self,
        *,
        token: str,
        contacts: Iterable[Mapping[str, Any]] = (),
        leads: Iterable[Mapping[str, Any]] = (),
        next_link_style: NextLinkStyle = "omit",
    ) -> None:
        self.token = token
        self.resources = {"contacts": [dict(c) for c in contacts], "leads": [dict(lead) for lead in leads]}
        self.next_link_style = next_link_style
        self.max_per_page_requested = 0
        super().__init__()

    def routes(self) -> list[Route]:
        return [Route("/v2/{resource}", self.list_resource)]

    @staticmethod
    def error(status: int, code: str, message: str, reason: str) -> Response:
        """Sell's error envelope."""
        body = {
            "errors": [{"error": {"code": code, "message": message, "details": message}}],
            "meta": {"http_status": f"{status} {reason}", "logref": str(uuid.uuid4())},
        }
        return EmulatedCrm.json(body, status=status)

    def unauthorized(self) -> Response:
        return self.error(401, "unauthorized", "Invalid access token.", "Unauthorized")

    def rate_limited(self, fault: Fault) -> Response:
        response = self.error(429, "rate_limit_exceeded", "Rate limit exceeded.", "Too Many Requests")
        response.headers.update(fault.headers)
        return response

    def server_error(self, status: int) -> Response:
        return self.error(status, "server_error", "Something went wrong.", "Internal Server Error")

    async def list_resource(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not recorded.headers.get("user-agent"):
            return self.error(400, "invalid_user_agent", "A User-Agent header is required.", "Bad Request")
        if recorded.headers.get("authorization") != f"Bearer {self.token}":
            return self.unauthorized()
        resource = request.path_params["resource"]
        if resource not in self.resources:
            return self.error(404, "not_found", "Resource not found.", "Not Found")
        query = recorded.query
        page = int_param(query, "page", 1)
        per_page = int_param(query, "per_page", self.DEFAULT_PER_PAGE)
        if page is None or per_page is None or page < 1 or not 1 <= per_page <= self.MAX_PER_PAGE:
            return self.error(422, "invalid_param", "page or per_page is not valid.", "Unprocessable Entity")
        self.max_per_page_requested = max(self.max_per_page_requested, per_page)
        records = self.resources[resource]
        if resource == "contacts" and "is_organization" in query:
            wanted = query["is_organization"] == "true"
            records = [r for r in records if bool(r.get("is_organization")) is wanted]
        start = (page - 1) * per_page
        chunk = records[start : start + per_page]
        kind = resource.removesuffix("s")
        base = f"{request.base_url}v2/{resource}"
        extra = "".join(f"&{k}={v}" for k, v in query.items() if k not in ("page", "per_page"))
        links: dict[str, Any] = {
            "self": f"{base}?page={page}&per_page={per_page}{extra}",
            "first_page": f"{base}?page=1&per_page={per_page}{extra}",
        }
        if page > 1:
            links["prev_page"] = f"{base}?page={page - 1}&per_page={per_page}{extra}"
        if start + per_page < len(records) and self.next_link_style != "none":
            links["next_page"] = f"{base}?page={page + 1}&per_page={per_page}{extra}"
        elif self.next_link_style == "null":
            links["next_page"] = None
        payload = {
            "items": [{"data": r, "meta": {"type": kind, "version": 1}} for r in chunk],
            "meta": {"type": "collection", "count": len(chunk), "links": links},
        }
        return await self.respond(payload)
