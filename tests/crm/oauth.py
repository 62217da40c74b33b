"""An OAuth2 authorization server (RFC 6749) for the OAuth presets' tests.

- ``GET /oauth/authorize?response_type=code&client_id=&redirect_uri=&state=&scope=[&code_challenge=...]``
  answers 302 to ``redirect_uri?code=...&state=...`` (the admin "signed in").
- ``POST /oauth/token`` (form): ``client_credentials``, ``refresh_token`` (rotating: each refresh issues a
  new refresh token and retires the old one) and ``authorization_code`` (with PKCE S256 when a challenge was
  given). Client credentials in the body or as HTTP Basic, as configured. Errors are RFC 6749 JSON
  (``invalid_client``, ``invalid_grant``, ``unsupported_grant_type``).

A CRM emulator asks ``provider.valid(token)`` to accept only the current access token.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from typing import Any, Literal
from urllib.parse import unquote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tests.crm.base import EmulatedCrm, RecordedRequest


class OAuthProvider(EmulatedCrm):
    """Issues ``at-N`` access tokens and ``rt-N`` refresh tokens; ``expires_in`` as configured."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        client_auth: Literal["body", "basic"] = "body",
        refresh_token: str | None = None,
        expires_in: int = 3600,
        rotate: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.client_auth = client_auth
        self.refresh_token = refresh_token
        self.access_token: str | None = None
        self.expires_in = expires_in
        self.rotate = rotate
        self.extra = dict(extra or {})
        self.codes: dict[str, dict[str, str]] = {}
        self.grants: list[str] = []
        self._serial = itertools.count(1)
        super().__init__()

    def routes(self) -> list[Route]:
        return [Route("/oauth/authorize", self.authorize), Route("/oauth/token", self.token, methods=["POST"])]

    def valid(self, token: str) -> bool:
        """Whether ``token`` is the access token issued last."""
        return self.access_token is not None and token == self.access_token

    def bearer_check(self, request: RecordedRequest) -> bool:
        """An auth check for a CRM emulator: ``Authorization: Bearer <current token>``."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and self.valid(token)

    def revoke_access_token(self) -> None:
        """Make the current access token invalid (as if it expired early)."""
        self.access_token = None

    async def authorize(self, request: Request) -> Response:
        recorded = await self.record(request)
        query = recorded.query
        if query.get("response_type") != "code" or query.get("client_id") != self.client_id:
            return self.json({"error": "invalid_request"}, status=400)
        code = f"code-{next(self._serial)}"
        self.codes[code] = {"redirect_uri": query.get("redirect_uri", ""), "challenge": query.get("code_challenge", "")}
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}"
        return RedirectResponse(target, status_code=302)

    async def token(self, request: Request) -> Response:
        recorded = await self.record(request)
        form = recorded.form()
        if not self._client_ok(recorded, form):
            return self.json(
                {"error": "invalid_client", "error_description": "Client authentication failed"}, status=401
            )
        grant = form.get("grant_type", "")
        self.grants.append(grant)
        if grant == "client_credentials":
            return await self._issue(refresh=False)
        if grant == "refresh_token":
            if not self.refresh_token or form.get("refresh_token") != self.refresh_token:
                return self._invalid_grant("refresh token is invalid, expired or revoked")
            return await self._issue(refresh=self.rotate)
        if grant == "authorization_code":
            issued = self.codes.pop(form.get("code", ""), None)
            if issued is None or issued["redirect_uri"] != form.get("redirect_uri"):
                return self._invalid_grant("authorization code is invalid or was issued to another redirect_uri")
            if issued["challenge"] and _challenge(form.get("code_verifier", "")) != issued["challenge"]:
                return self._invalid_grant("PKCE verification failed")
            return await self._issue(refresh=True)
        return self.json({"error": "unsupported_grant_type"}, status=400)

    def _client_ok(self, request: RecordedRequest, form: dict[str, str]) -> bool:
        if self.client_auth == "basic":
            pair = request.basic_credentials() or ""
            client_id, _, secret = pair.partition(":")
            return (unquote(client_id), unquote(secret)) == (
                self.client_id,
                self.client_secret,
            ) and "client_secret" not in form
        return form.get("client_id") == self.client_id and form.get("client_secret") == self.client_secret

    def _invalid_grant(self, description: str) -> Response:
        return self.json({"error": "invalid_grant", "error_description": description}, status=400)

    async def _issue(self, *, refresh: bool) -> Response:
        serial = next(self._serial)
        self.access_token = f"at-{serial}-secret"
        payload: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            **self.extra,
        }
        if refresh:
            self.refresh_token = f"rt-{serial}-secret"
            payload["refresh_token"] = self.refresh_token
        return self.json(payload)


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
