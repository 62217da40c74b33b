"""Zendesk Support API v2 (users with sideloads, organizations), as documented.

- ``Authorization: Basic base64("{email}/token:{api_token}")``; otherwise 401 ``{"error": "Couldn't authenticate
  you"}``.
- ``GET /api/v2/users.json`` and ``/api/v2/organizations.json`` with cursor pagination: ``page[size]`` (default 100,
  more is a 400) and ``page[after]``; the answer has ``meta {has_more, after_cursor, before_cursor}`` and
  ``links {next, prev}`` (``next`` null on the last page).
- ``include=identities,organizations`` on users sideloads, at the top level, the ``identities`` of the page's users
  (``{id, user_id, type: "email"|"phone_number", value, verified, primary}``) and their ``organizations``.
- Users: ``id, name, email, phone (the primary number), organization_id, role, external_id, active``;
  organizations: ``id, name, external_id, domain_names, organization_fields {key: value}``. Organizations have no
  standard phone field.
- 429 ``{"error": "APIRateLimitExceeded", ...}`` with ``Retry-After``; ``X-Rate-Limit`` and
  ``X-Rate-Limit-Remaining`` on every answer.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, int_param

MAX_PAGE_SIZE = 100
SIDELOADS = {"identities", "organizations"}


class ZendeskEmulator(EmulatedCrm):
    """A Zendesk account: users (with ``phones``: their phone identities, primary first) and organizations."""

    def __init__(
        self,
        *,
        email: str,
        api_token: str,
        users: Iterable[Mapping[str, Any]] = (),
        organizations: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.email = email
        self.api_token = api_token
        self.resources = {
            "users": [{"id": 35_436_000 + i, **u} for i, u in enumerate(users)],
            "organizations": [{"id": 57_542_000 + i, **o} for i, o in enumerate(organizations)],
        }
        self.page_sizes: list[int] = []
        super().__init__()

    def routes(self) -> list[Route]:
        return [Route("/api/v2/{resource}.json", self.listing)]

    def unauthorized(self) -> Response:
        return self.json({"error": "Couldn't authenticate you"}, status=401)

    def rate_limited(self, fault: Fault) -> Response:
        body = {"error": "APIRateLimitExceeded", "description": "Number of allowed API requests per minute exceeded"}
        return self.json(body, status=429, headers={"X-Rate-Limit": "400", "X-Rate-Limit-Remaining": "0",
                                                    **fault.headers})  # fmt: skip

    async def listing(self, request: Request) -> Response:
        recorded = await self.record(request)
        if recorded.basic_credentials() != f"{self.email}/token:{self.api_token}":
            return self.unauthorized()
        resource = request.path_params["resource"]
        if resource not in self.resources:
            return self.json({"error": "InvalidEndpoint", "description": "Not found"}, status=404)
        query = recorded.query
        size = int_param(query, "page[size]", MAX_PAGE_SIZE)
        if size is None or not 1 <= size <= MAX_PAGE_SIZE:
            description = f"page[size] must be between 1 and {MAX_PAGE_SIZE}"
            return self.json({"error": "InvalidPaginationParameter", "description": description}, status=400)
        self.page_sizes.append(size)
        start = _decode(query.get("page[after]", ""))
        rows = self.resources[resource]
        chunk = rows[start : start + size]
        more = start + size < len(rows)
        after = _encode(start + size) if chunk else None
        before = _encode(start) if chunk else None
        base = f"{request.base_url}api/v2/{resource}.json"
        kept = {k: v for k, v in query.items() if not k.startswith("page[")}
        payload: dict[str, Any] = {
            resource: [{k: v for k, v in row.items() if k != "phones"} for row in chunk],
            "meta": {"has_more": more, "after_cursor": after, "before_cursor": before},
            "links": {
                "next": f"{base}?{urlencode({**kept, 'page[size]': size, 'page[after]': after})}" if more else None,
                "prev": f"{base}?{urlencode({**kept, 'page[size]': size, 'page[before]': before})}" if start else None,
            },
        }
        includes = set(query.get("include", "").split(",")) & SIDELOADS if resource == "users" else set()
        if "identities" in includes:
            payload["identities"] = [identity for user in chunk for identity in _identities(user)]
        if "organizations" in includes:
            wanted = {u.get("organization_id") for u in chunk}
            payload["organizations"] = [o for o in self.resources["organizations"] if o["id"] in wanted]
        headers = {"X-Rate-Limit": "400", "X-Rate-Limit-Remaining": "399"}
        return await self.respond(payload, headers=headers)


def _identities(user: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = [{"id": user["id"] * 10, "user_id": user["id"], "type": "email", "value": user.get("email"),
              "verified": True, "primary": True}]  # fmt: skip
    for i, number in enumerate(user.get("phones") or []):
        found.append({"id": user["id"] * 10 + i + 1, "user_id": user["id"], "type": "phone_number", "value": number,
                      "verified": True, "primary": i == 0})  # fmt: skip
    return found


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"cursor:{offset}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    if not cursor:
        return 0
    padded = cursor + "=" * (-len(cursor) % 4)
    return int(base64.urlsafe_b64decode(padded).decode().partition(":")[2])
