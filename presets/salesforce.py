"""Salesforce: a pasted access token as an alternative to the client-credentials flow; API allowance errors.

The listing itself is declarative (``salesforce.toml``). This module adds what the preset file cannot say:

- an admin either registers a connected app (consumer key and secret, client-credentials flow) or pastes an
  access token; with a token, requests carry it as a bearer token and no token request is made;
- Salesforce reports an exhausted API allowance (the org's rolling 24-hour request count, or too many
  long-running requests) as ``403 REQUEST_LIMIT_EXCEEDED`` rather than 429; that is a rate limit the next sync
  can get past, not a missing permission, and is reported so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from core.connector import Connector, ConnectorContext
from core.connector.http import CrmHttp, CrmResponse, StaticAuth
from core.errors import ConnectorError, InvalidInput

EXPIRED_HINT = "the access token has expired or was revoked: paste a new one, or use a connected app instead"
LIMIT_CODE = "REQUEST_LIMIT_EXCEEDED"


def create_connector(context: ConnectorContext) -> Connector:
    """The declarative connector, authenticated with the pasted token or the connected app."""
    settings = context.settings
    token = settings.get("access_token", "")
    if token:
        context.http.auth = StaticAuth(
            {"Authorization": f"Bearer {token}"}, {}, credential="access token", hint=EXPIRED_HINT
        )
    elif not settings.get("client_id") or not settings.get("client_secret"):
        missing = "client_id" if not settings.get("client_id") else "client_secret"
        raise InvalidInput(
            "Salesforce needs either the consumer key and secret of a connected app (Setup → App Manager) or an "
            "access token; enter one of the two.",
            field=missing,
        )
    context.api.http = cast(CrmHttp, AllowanceAwareHttp(context.http))
    return context.api


class AllowanceAwareHttp:
    """Wraps the connector's ``CrmHttp``: a 403 is read as Salesforce's error array before it becomes an error."""

    def __init__(self, http: CrmHttp) -> None:
        self._http = http

    def __getattr__(self, name: str) -> Any:
        return getattr(self._http, name)

    async def request(
        self, method: str, target: str, *, what: str, accept: Callable[[int], bool] | None = None, **kwargs: Any
    ) -> CrmResponse:
        """``CrmHttp.request``, with 403 answers explained by their ``errorCode``."""

        def wanted(status: int) -> bool:
            return accept is not None and accept(status)

        response = await self._http.request(
            method, target, what=what, accept=lambda status: status == 403 or wanted(status), **kwargs
        )
        if response.status == 403 and not wanted(403):
            raise self._forbidden(response, what)
        return response

    def _forbidden(self, response: CrmResponse, what: str) -> ConnectorError:
        code, message = _first_error(response)
        redact = self._http.redact
        if code == LIMIT_CODE:
            text = (
                f"Salesforce API request limit reached on {what} ({message or code}): the organisation's API "
                "allowance is used up for now; the next sync will try again (Setup → Company Information shows "
                "the API requests of the last 24 hours)"
            )
            return ConnectorError(redact(text), status=403, retryable=True)
        detail = f"{code}: {message}" if code and message else code or message or "no reason given"
        text = f"Salesforce refused access to {what} (403, {detail}): the user lacks a permission for it"
        return ConnectorError(redact(" ".join(text.split())), status=403)


def _first_error(response: CrmResponse) -> tuple[str, str]:
    """``errorCode`` and ``message`` of the first entry of Salesforce's error array (``""`` when absent)."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("errorCode") or ""), " ".join(str(body.get("message") or "").split())[:200]
