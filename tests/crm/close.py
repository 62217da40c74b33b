"""Close API v1 contacts and leads, as documented (developer.close.com).

- ``GET /api/v1/contact/`` and ``GET /api/v1/lead/`` with ``_skip`` (default 0), ``_limit`` (default 100) and
  ``_fields`` (comma-separated: only those keys come back).
- HTTP Basic with the API key as user name and an empty password; otherwise 401.
- ``{"data": [...], "has_more": bool}``. ``_limit`` above the resource's maximum (100 here) is a 400; so is a
  ``_skip`` above ``max_skip`` ("The skip you set is larger than the maximum skip for this resource
  (max_skip = N). Please refine your search query.", the wording Close's users quote).
- 429 with ``{"error": {"rate_reset", "rate_limit", "rate_window", ...}}`` and the wait in the ``ratelimit``
  (``limit=, remaining=, reset=``) and ``x-rate-limit-*`` headers (seconds); every answer carries them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, Fault, RecordedRequest, int_param

RESOURCES = {"contact": "contacts", "lead": "leads"}


class CloseEmulator(EmulatedCrm):
    """Close with the given contacts and leads (raw, as the API sends them)."""

    MAX_LIMIT = 100

    def __init__(
        self,
        *,
        api_key: str,
        contacts: Iterable[Mapping[str, Any]] = (),
        leads: Iterable[Mapping[str, Any]] = (),
        max_skip: int = 250_000,
        rate_reset: float = 1.5,
    ) -> None:
        self.api_key = api_key
        self.resources = {"contacts": [dict(c) for c in contacts], "leads": [dict(lead) for lead in leads]}
        self.max_skip = max_skip
        self.rate_reset = rate_reset
        super().__init__()

    def routes(self) -> list[Route]:
        return [Route("/api/v1/{resource}/", self.list_resource)]

    def authorized(self, request: RecordedRequest) -> bool:
        """The API key as the Basic user name, with an empty password."""
        return request.basic_credentials() == f"{self.api_key}:"

    def rate_headers(self, remaining: int, reset: float) -> dict[str, str]:
        """The rate-limit headers Close sends."""
        return {"ratelimit": f"limit=60, remaining={remaining}, reset={reset}", "x-rate-limit-limit": "60",
                "x-rate-limit-remaining": str(remaining), "x-rate-limit-reset": str(reset)}  # fmt: skip

    def unauthorized(self) -> Response:
        return self.json({"error": "The API key you provided is not valid."}, status=401)

    def rate_limited(self, fault: Fault) -> Response:
        body = {"error": {"rate_reset": self.rate_reset, "rate_limit": 60, "rate_window": 1,
                          "rate_limit_type": "key", "message": "API call count exceeded for this period"}}  # fmt: skip
        headers = {**self.rate_headers(0, self.rate_reset), **fault.headers}
        return self.json(body, status=429, headers=headers)

    def server_error(self, status: int) -> Response:
        return self.json({"error": "Internal server error."}, status=status)

    async def list_resource(self, request: Request) -> Response:
        recorded = await self.record(request)
        if not self.authorized(recorded):
            return self.unauthorized()
        resource = RESOURCES.get(request.path_params["resource"])
        if resource is None:
            return self.json({"error": "Not found."}, status=404)
        skip = int_param(recorded.query, "_skip", 0)
        limit = int_param(recorded.query, "_limit", 100)
        if skip is None or limit is None or skip < 0 or limit < 1:
            return self.json({"error": "_skip and _limit must be non-negative integers."}, status=400)
        if limit > self.MAX_LIMIT:
            message = (
                f"The limit you set is larger than the maximum limit for this resource (max_limit = {self.MAX_LIMIT})."
            )
            return self.json({"error": message}, status=400)
        if skip > self.max_skip:
            message = (f"The skip you set is larger than the maximum skip for this resource (max_skip = "
                       f"{self.max_skip}). Please refine your search query.")  # fmt: skip
            return self.json({"error": message}, status=400)
        fields = [f for f in recorded.query.get("_fields", "").split(",") if f]
        records = self.resources[resource]
        chunk = [_only(r, fields) for r in records[skip : skip + limit]]
        payload = {"has_more": skip + limit < len(records), "data": chunk}
        return await self.respond(payload, headers=self.rate_headers(59, 1.0))


def _only(record: Mapping[str, Any], fields: list[str]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k in fields} if fields else dict(record)
