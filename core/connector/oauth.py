"""OAuth2: client credentials, refresh tokens and the authorization-code flow.

Tokens obtained at run time go to the ``on_tokens`` callback (the caller stores them encrypted and passes them
back as ``tokens`` next time); they are added to the redactor at once and never logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from core.connector.base import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    Clock,
    RetryPolicy,
    Sleep,
    Timeouts,
    TokenCallback,
)
from core.connector.http import CrmHttp, Redactor, StaticAuth
from core.errors import ConnectorError, InvalidInput, PresetError
from core.presets import (
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    OAuthConfig,
    Preset,
    Template,
    render_settings_template,
    validate_settings,
)

EXPIRY_MARGIN = 60.0  # renew an access token this many seconds before it expires


class OAuthSession:
    """Keeps an access token valid: obtains it, renews it before expiry and once after a 401."""

    can_refresh = True

    def __init__(
        self,
        config: OAuthConfig,
        settings: Mapping[str, str],
        *,
        crm: str,
        tokens: Mapping[str, str] | None,
        on_tokens: TokenCallback | None,
        redactor: Redactor,
        clock: Clock,
        credential: str = "access token",
        hint: str = "",
    ) -> None:
        self.credential = credential
        self.hint = hint
        self._config = config
        self._settings = dict(settings)
        self._crm = crm
        self._tokens = {k: v for k, v in (tokens or {}).items() if v}
        self._on_tokens = on_tokens
        self._redactor = redactor
        self._clock = clock
        self._lock = asyncio.Lock()
        redactor.add(self._tokens.get("access_token"), self._tokens.get("refresh_token"))

    @property
    def base_url(self) -> str | None:
        """The API address the token response named (``instance_url``, ``api_domain``), if configured."""
        field = self._config.base_url_field
        return self._tokens.get(field) if field else None

    async def credentials(self, http: CrmHttp) -> tuple[dict[str, str], dict[str, str]]:
        """The access-token header, renewing the token first if it is missing or about to expire."""
        async with self._lock:
            if self._needs_token():
                await self._obtain(http)
        value = Template.parse(self._config.header_format).render({"access_token": self._tokens["access_token"]})
        return {self._config.header: value}, {}

    async def refresh(self, http: CrmHttp) -> None:
        """Renew the access token after the CRM refused it."""
        async with self._lock:
            await self._obtain(http)

    def _needs_token(self) -> bool:
        if not self._tokens.get("access_token"):
            return True
        try:
            expires_at = float(self._tokens.get("expires_at", ""))
        except ValueError:
            return False
        return expires_at - EXPIRY_MARGIN <= self._clock()

    async def _obtain(self, http: CrmHttp) -> None:
        config = self._config
        if isinstance(config, OAuth2ClientCredentials):
            form = {"grant_type": "client_credentials"}
        else:
            refresh = self._tokens.get("refresh_token") or render_settings_template(
                config.refresh_token, self._settings
            )
            if not refresh:
                raise ConnectorError(
                    f"{self._crm} is not connected yet: sign in to {self._crm} from the integration's settings"
                )
            form = {"grant_type": "refresh_token", "refresh_token": refresh}
        fresh = await request_tokens(http, config, self._settings, form, redactor=self._redactor, clock=self._clock)
        self._tokens.update(fresh)
        if self._on_tokens is not None:
            self._on_tokens(dict(self._tokens))


async def request_tokens(
    http: CrmHttp,
    config: OAuthConfig,
    settings: Mapping[str, str],
    form: Mapping[str, str],
    *,
    redactor: Redactor,
    clock: Clock,
) -> dict[str, str]:
    """POST to the token endpoint; return ``access_token``, ``expires_at`` (epoch seconds) and the rest."""

    def fill(text: str) -> str:
        return render_settings_template(text, settings)

    client_id, client_secret = fill(config.client_id), fill(config.client_secret)
    redactor.add(client_secret, *form.values())
    data = {**form, **{k: fill(v) for k, v in config.token_params.items()}}
    scope = fill(config.scope)
    if scope and form["grant_type"] == "client_credentials":
        data["scope"] = scope
    headers = {"Accept": "application/json"}
    if config.client_auth == "basic":
        pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        redactor.add(headers["Authorization"].partition(" ")[2])
    else:
        data["client_id"] = client_id
        if client_secret:
            data["client_secret"] = client_secret
    response = await http.request(
        "POST", fill(config.token_url), what="the token request", data=data, headers=headers,
        authenticate=False, accept=lambda status: 400 <= status < 500,
    )  # fmt: skip
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ConnectorError(f"{http.crm} returned a token answer that is not valid JSON", status=response.status)
    if response.status >= 400 or body.get("error") or not body.get("access_token"):  # Zoho refuses with a 200
        pasted = isinstance(config, OAuth2RefreshToken)  # the admin pasted it in; no sign-in gives a new one
        raise _token_error(http.crm, form["grant_type"], response.status, body, redactor, pasted=pasted)
    tokens = {"access_token": str(body["access_token"])}
    if body.get("refresh_token"):
        tokens["refresh_token"] = str(body["refresh_token"])
    if body.get("token_type"):
        tokens["token_type"] = str(body["token_type"])
    with contextlib.suppress(KeyError, TypeError, ValueError):
        tokens["expires_at"] = str(int(clock() + float(body["expires_in"])))
    tokens.update({key: str(body[key]) for key in config.keep if body.get(key)})
    redactor.add(tokens["access_token"], tokens.get("refresh_token"))
    return tokens


def _token_error(
    crm: str, grant: str, status: int, body: dict[str, Any], redactor: Redactor, *, pasted: bool = False
) -> ConnectorError:
    """A refusal, whether it came as a 4xx or as a 200 with an ``error`` or without an access token.

    ``pasted``: the refresh token is a setting the admin copied from the CRM, so the advice is to make a new one.
    """
    code = str(body.get("error") or (status if status >= 400 else "no access token"))
    subject = {
        "refresh_token": "the refresh token",
        "authorization_code": "the sign-in code",
        "client_credentials": "the client ID and secret",
    }[grant]
    if code == "invalid_client":
        advice = "check the client ID and client secret"
    elif grant == "client_credentials":
        advice = "check the client ID, secret and scope"
    elif pasted and grant == "refresh_token":
        advice = f"make a new refresh token in {crm} and paste it into the integration's settings"
    else:
        advice = f"sign in to {crm} again from the integration's settings"
    return ConnectorError(redactor(f"{crm} refused {subject} ({code}): {advice}"), status=status)


# ------------------------------------------------------------------------------ authorization-code flow


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """Where to send the admin's browser, and what to keep until ``GET /oauth/callback`` comes back."""

    url: str
    state: str
    code_verifier: str | None = None


def authorization_url(
    preset: Preset, settings: Mapping[str, str], *, redirect_uri: str, state: str | None = None
) -> AuthorizationRequest:
    """Build the CRM's sign-in URL with a fresh ``state`` (and a PKCE challenge if the preset asks for it)."""
    config = _authorization_code_config(preset)
    values = validate_settings(preset, settings)

    def fill(text: str) -> str:
        return render_settings_template(text, values)

    state = state or secrets.token_urlsafe(24)
    params = {"response_type": "code", "client_id": fill(config.client_id), "redirect_uri": redirect_uri}
    if scope := fill(config.scope):
        params["scope"] = scope
    params["state"] = state
    params.update({key: fill(value) for key, value in config.authorize_params.items()})
    verifier = None
    if config.pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        params["code_challenge"] = base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
        params["code_challenge_method"] = "S256"
    url = httpx.URL(fill(config.authorize_url)).copy_merge_params(params)
    return AuthorizationRequest(str(url), state, verifier)


async def exchange_code(
    preset: Preset,
    settings: Mapping[str, str],
    *,
    code: str,
    state: str,
    expected_state: str,
    redirect_uri: str,
    code_verifier: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    retry: RetryPolicy = DEFAULT_RETRY,
    ca_bundle: str | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.time,
) -> dict[str, str]:
    """Check ``state`` against the one issued, then trade the code for tokens (to be stored encrypted)."""
    if not expected_state or not hmac.compare_digest(state.encode(), expected_state.encode()):
        raise InvalidInput(
            "The answer from the CRM does not belong to this sign-in (state mismatch): start connecting again.",
            field="state",
        )
    config = _authorization_code_config(preset)
    values = validate_settings(preset, settings)
    redactor = Redactor()
    redactor.add(code, *(values[name] for name in preset.secret_settings))
    http = CrmHttp(
        crm=preset.name, base_url=values["api_base_url"], auth=StaticAuth({}, {}, credential="sign-in", hint=""),
        redactor=redactor, transport=transport, timeouts=timeouts, retry=retry, ca_bundle=ca_bundle, sleep=sleep,
        clock=clock,
    )  # fmt: skip
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier:
        form["code_verifier"] = code_verifier
    try:
        return await request_tokens(http, config, values, form, redactor=redactor, clock=clock)
    finally:
        await http.aclose()


def _authorization_code_config(preset: Preset) -> OAuth2AuthorizationCode:
    if not isinstance(preset.auth, OAuth2AuthorizationCode):
        raise PresetError(f"{preset.name} does not sign in through OAuth (authorization code)")
    return preset.auth
