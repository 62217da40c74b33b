"""SugarCRM: the OAuth 2.0 password grant and the ``OAuth-Token`` header, around the declarative listing.

Sugar signs an API user in with ``POST {api}/oauth2/token`` (JSON: ``grant_type=password``, ``client_id``
``sugar``, an empty ``client_secret``, ``username``, ``password``, ``platform``) and expects the access token in
an ``OAuth-Token`` header. The engine has no password grant, so this module supplies the request
authentication: it signs in on the first request, signs in again shortly before the token expires or when
Sugar refuses it (once per request), and signs out when the connector closes. Sugar's refusals become
messages that say which setting to check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from core.connector import ApiConnector, ConnectionTest, Connector, ConnectorContext, FetchedRecord, PageProgress
from core.connector.http import CrmHttp, CrmResponse
from core.errors import ConnectorError

TOKEN_PATH = "oauth2/token"  # noqa: S105 (a path)
LOGOUT_PATH = "oauth2/logout"
HEADER = "OAuth-Token"
EXPIRY_MARGIN = 60.0  # sign in again this many seconds before the token expires
DEFAULT_LIFETIME = 3600.0  # Sugar's documented expires_in


def create_connector(context: ConnectorContext) -> Connector:
    """The declarative connector, signed in to Sugar with the password grant."""
    auth = SugarSignIn(context.settings)
    context.http.auth = auth
    return SugarConnector(context.api, auth)


class SugarSignIn:
    """Request authentication for Sugar: an access token from the password grant, sent as ``OAuth-Token``."""

    credential = "user name and password"
    can_refresh = True
    base_url: str | None = None

    def __init__(self, settings: Mapping[str, str]) -> None:
        self.hint = "check the user name and password, and that the user is active"
        self._settings = dict(settings)
        self._token = ""
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def signed_in(self) -> bool:
        """Whether an access token was obtained (and not yet given up)."""
        return bool(self._token)

    async def credentials(self, http: CrmHttp) -> tuple[dict[str, str], dict[str, str]]:
        """The ``OAuth-Token`` header, signing in first when there is no token or it is about to expire."""
        async with self._lock:
            if not self._token or self._expires_at - EXPIRY_MARGIN <= http.clock():
                await self._sign_in(http)
        return {HEADER: self._token}, {}

    async def refresh(self, http: CrmHttp) -> None:
        """Sign in again after Sugar refused the token."""
        async with self._lock:
            await self._sign_in(http)

    async def sign_out(self, http: CrmHttp) -> None:
        """End the API session (best effort: a failure here changes nothing for the sync)."""
        if not self._token:
            return
        token, self._token = self._token, ""
        with contextlib.suppress(ConnectorError):
            await http.request(
                "POST", LOGOUT_PATH, what="the sign-out", headers={HEADER: token}, authenticate=False,
                accept=lambda status: status < 600,
            )  # fmt: skip

    async def _sign_in(self, http: CrmHttp) -> None:
        settings = self._settings
        body = {
            "grant_type": "password",
            "client_id": settings.get("client_id") or "sugar",
            "client_secret": settings.get("client_secret", ""),
            "username": settings.get("username", ""),
            "password": settings.get("password", ""),
            "platform": settings.get("platform") or "switchboard",
        }
        response = await http.request(
            "POST", TOKEN_PATH, what="the sign-in", json=body, authenticate=False,
            accept=lambda status: 400 <= status < 500,
        )  # fmt: skip
        answer = _json_object(response)
        token = str(answer.get("access_token") or "")
        if response.status >= 400 or not token:
            raise _refusal(response, answer, settings, http)
        http.redact.add(token, str(answer.get("refresh_token") or ""))
        try:
            lifetime = float(answer.get("expires_in") or DEFAULT_LIFETIME)
        except (TypeError, ValueError):
            lifetime = DEFAULT_LIFETIME
        self._token, self._expires_at = token, http.clock() + lifetime


class SugarConnector:
    """The declarative connector, signing out of Sugar when it closes."""

    def __init__(self, api: ApiConnector, auth: SugarSignIn) -> None:
        self.api = api
        self.auth = auth

    def fetch(self, *, progress: Callable[[PageProgress], None] | None = None) -> AsyncIterator[list[FetchedRecord]]:
        """Contacts, accounts and open leads, one list per page."""
        return self.api.fetch(progress=progress)

    async def test_connection(self) -> ConnectionTest:
        """Sign in and fetch a few contacts."""
        return await self.api.test_connection()

    async def aclose(self) -> None:
        """Sign out, then close the HTTP client."""
        try:
            await self.auth.sign_out(self.api.http)
        finally:
            await self.api.aclose()


def _json_object(response: CrmResponse) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refusal(
    response: CrmResponse, answer: Mapping[str, Any], settings: Mapping[str, str], http: CrmHttp
) -> ConnectorError:
    """Why Sugar refused the sign-in, and which setting to check."""
    code = str(answer.get("error") or response.status)
    said = " ".join(str(answer.get("error_message") or answer.get("error_description") or "").split())[:200]
    detail = f"{code}: {said}" if said else code
    if "platform" in said.lower():
        advice = (
            f"add the API platform {settings.get('platform') or 'switchboard'!r} under Admin → Configure API "
            f"Platforms, or enter one that is listed there"
        )
    elif code in ("invalid_client", "unauthorized_client"):
        advice = "check the OAuth key and secret (Admin → OAuth Keys), or leave them at sugar and empty"
    elif response.status < 400:
        advice = "Sugar sent no access token; check the API address setting"
    else:
        advice = "check the user name and password, and that the user is active and may use the API"
    message = f"SugarCRM refused the sign-in ({detail}): {advice}"
    return ConnectorError(http.redact(message), status=response.status)
