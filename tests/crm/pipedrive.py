"""Pipedrive API v2 persons and organizations, as documented.

- ``GET /api/v2/persons?cursor=&limit=`` and ``/api/v2/organizations``; envelope
  ``{"success": true, "data": [...], "additional_data": {"next_cursor": "..." | null}}``.
- The API token in the ``x-api-token`` header (current docs) or the ``api_token`` query parameter (older docs).
- ``limit`` defaults to 100; "a maximum value of 500 is allowed": more is refused with a 400.
- Persons carry ``phones``/``emails`` arrays of ``{value, primary, label}``.
- ``x-ratelimit-limit``/``-remaining``/``-reset`` on every answer; 429 when over the limit.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, RecordedRequest, int_param

RATE_HEADERS = {"x-ratelimit-limit": "40", "x-ratelimit-remaining": "39", "x-ratelimit-reset": "2"}


def encode_cursor(index: int) -> str:
    """An opaque cursor, shaped like Pipedrive's (base64 JSON)."""
    return base64.b64encode(json.dumps({"id": index}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The index inside a cursor; ``None`` if it is not one of ours."""
    try:
        return int(json.loads(base64.b64decode(cursor + "=" * (-len(cursor) % 4)))["id"])
    except (ValueError, KeyError, TypeError):
        return None


class PipedriveEmulator(EmulatedCrm):
    """Pipedrive with the given v2 person and organization items."""

    MAX_LIMIT = 500

    def __init__(
        self,
        *,
        api_token: str,
        persons: Iterable[Mapping[str, Any]] = (),
        organizations: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.api_token = api_token
        self.items = {"persons": [dict(p) for p in persons], "organizations": [dict(o) for o in organizations]}
        super().__init__()

    def routes(self) -> list[Route]:
        return [Route("/api/v2/{entity}", self.list_items)]

    def authorized(self, request: RecordedRequest) -> bool:
        """Header (current docs) or query parameter (older docs)."""
        return self.api_token in (request.headers.get("x-api-token"), request.query.get("api_token"))

    def unauthorized(self) -> Response:
        body = {
            "success": False,
            "error": "unauthorized access",
            "errorCode": 401,
            "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API.",
        }
        return self.json(body, status=401)

    def rate_limited(self, fault: Fault) -> Response:
        headers = {**RATE_HEADERS, "x-ratelimit-remaining": "0", **fault.headers}
        return self.json(
            {"success": False, "error": "Request over limit", "errorCode": 429}, status=429, headers=headers
        )

    def server_error(self, status: int) -> Response:
        return self.json({"success": False, "error": "Internal server error", "errorCode": status}, status=status)

    async def list_items(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not self.authorized(recorded):
            return self.unauthorized()
        items = self.items.get(request.path_params["entity"])
        if items is None:
            return self.json({"success": False, "error": "Not found", "errorCode": 404}, status=404)
        limit = int_param(recorded.query, "limit", 100)
        start = decode_cursor(recorded.query["cursor"]) if "cursor" in recorded.query else 0
        if limit is None or not 1 <= limit <= self.MAX_LIMIT or start is None:
            error = (
                "Validation failed: limit: Parameter 'limit' must be between 1 and 500"
                if start is not None
                else "Validation failed: cursor: invalid cursor"
            )
            return self.json({"success": False, "error": error, "errorCode": 400}, status=400)
        page = items[start : start + limit]
        next_cursor = encode_cursor(start + limit) if start + limit < len(items) else None
        payload = {"success": True, "data": page, "additional_data": {"next_cursor": next_cursor}}
        return await self.respond(payload, headers=RATE_HEADERS)
