"""Freshsales (Freshworks CRM) API: contacts and accounts listed through saved views, as documented.

- ``Authorization: Token token=<API key>`` on every request; otherwise 401
  ``{"login": "failed", "message": "Incorrect or expired API key"}``.
- ``GET /crm/sales/api/contacts/filters`` and ``/crm/sales/api/sales_accounts/filters`` list the saved views:
  ``{"filters": [{id, name, model_class_name, user_id, is_default, updated_at, user_name}]}``; the ids differ per
  account (here they are random-looking numbers), so a client has to look up "All Contacts" / "All Accounts".
- ``GET /crm/sales/api/contacts/view/{view_id}?page=&per_page=&sort=&sort_type=`` answers
  ``{"contacts": [...], "meta": {"total_pages": N, "total": M}}``; ``sales_accounts/view/{id}`` answers
  ``{"sales_accounts": [...], "meta": ...}``. ``page`` is 1-based; ``per_page`` defaults to 25 and is capped at
  100 (the cap is not in the public docs: clients use 25-100); an unknown view is a 404.
- Contacts carry ``work_number``, ``mobile_number`` and, in newer accounts, a ``phone_numbers`` array
  (``[{"id", "value", "label", "is_primary"}]``, not in the public docs: the preset tolerates either); accounts
  carry ``phone``. 429 with ``Retry-After`` over the hourly/minutely limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, int_param

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
VIEWS = {
    "contacts": ("Contact", ("My Contacts", "All Contacts", "New Contacts", "Recently Imported")),
    "sales_accounts": ("SalesAccount", ("My Accounts", "All Accounts", "Recently Added")),
}


class FreshsalesEmulator(EmulatedCrm):
    """A Freshsales account with contacts and sales accounts (dicts as the API sends them, without ``id``)."""

    def __init__(
        self,
        *,
        api_key: str,
        contacts: Iterable[Mapping[str, Any]] = (),
        accounts: Iterable[Mapping[str, Any]] = (),
        view_names: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.api_key = api_key
        self.resources = {
            "contacts": _with_ids(contacts, 16_000_000_000),
            "sales_accounts": _with_ids(accounts, 17_000_000_000),
        }
        names = {kind: (view_names or {}).get(kind, default[1]) for kind, default in VIEWS.items()}
        self.views = {
            kind: [{"id": 402_014_829_835 + 97 * i + (0 if kind == "contacts" else 50_000), "name": name,
                    "model_class_name": VIEWS[kind][0], "user_id": 402_000_000_001, "is_default": True,
                    "updated_at": "2025-03-01T09:00:00+05:30", "user_name": "Renée Dubois"}
                   for i, name in enumerate(names[kind])]
            for kind in VIEWS
        }  # fmt: skip
        self.per_pages: list[int] = []
        super().__init__()

    def routes(self) -> list[Route]:
        return [
            Route("/crm/sales/api/{resource}/filters", self.filters),
            Route("/crm/sales/api/{resource}/view/{view_id}", self.view),
        ]

    def view_id(self, resource: str, name: str) -> int:
        """The id of the view called ``name``."""
        return next(int(v["id"]) for v in self.views[resource] if v["name"] == name)

    def unauthorized(self) -> Response:
        return self.json({"login": "failed", "message": "Incorrect or expired API key"}, status=401)

    def rate_limited(self, fault: Fault) -> Response:
        return self.json({"errors": {"code": 429, "message": ["Too many requests"]}}, status=429, headers=fault.headers)

    def _not_found(self) -> Response:
        return self.json({"errors": {"code": 404, "message": ["Not Found"]}}, status=404)

    async def filters(self, request: Request) -> Response:
        recorded = await self.record(request)
        if recorded.headers.get("authorization") != f"Token token={self.api_key}":
            return self.unauthorized()
        resource = request.path_params["resource"]
        if resource not in self.views:
            return self._not_found()
        return self.json({"filters": self.views[resource]})

    async def view(self, request: Request) -> Response:
        recorded = await self.record(request)
        if recorded.headers.get("authorization") != f"Token token={self.api_key}":
            return self.unauthorized()
        resource = request.path_params["resource"]
        if resource not in self.views:
            return self._not_found()
        view = next((v for v in self.views[resource] if str(v["id"]) == request.path_params["view_id"]), None)
        if view is None:
            return self._not_found()
        page = int_param(recorded.query, "page", 1)
        per_page = int_param(recorded.query, "per_page", DEFAULT_PER_PAGE)
        if page is None or per_page is None or page < 1 or per_page < 1:
            return self.json({"errors": {"code": 400, "message": ["Invalid page or per_page"]}}, status=400)
        self.per_pages.append(per_page)
        per_page = min(per_page, MAX_PER_PAGE)
        rows = self.resources[resource] if view["name"].startswith("All") else self.resources[resource][:3]
        start = (page - 1) * per_page
        total_pages = max(1, -(-len(rows) // per_page))
        payload = {resource: rows[start : start + per_page], "meta": {"total_pages": total_pages, "total": len(rows)}}
        return await self.respond(payload)


def _with_ids(records: Iterable[Mapping[str, Any]], base: int) -> list[dict[str, Any]]:
    return [{"id": base + i, **record} for i, record in enumerate(records)]
