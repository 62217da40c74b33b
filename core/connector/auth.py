"""Authentication schemes that need no token exchange: none, API key, Basic, bearer and vendor headers."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping

from core.connector.base import Clock, TokenCallback
from core.connector.http import Redactor, RequestAuth, StaticAuth
from core.connector.oauth import OAuthSession
from core.presets import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    HeaderAuth,
    NoAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    Preset,
    Template,
    render_settings_template,
)


def build_auth(
    preset: Preset,
    settings: Mapping[str, str],
    *,
    redactor: Redactor,
    tokens: Mapping[str, str] | None = None,
    on_tokens: TokenCallback | None = None,
    clock: Clock,
) -> RequestAuth:
    """The request authentication a preset's ``[auth]`` table describes, filled in from the settings."""
    auth = preset.auth
    credential = credential_name(preset)
    hint = auth.hint

    def fill(text: str) -> str:
        return render_settings_template(text, settings)

    if isinstance(auth, OAuth2ClientCredentials | OAuth2RefreshToken | OAuth2AuthorizationCode):
        return OAuthSession(
            auth, settings, crm=preset.name, tokens=tokens, on_tokens=on_tokens, redactor=redactor, clock=clock,
            credential=credential, hint=hint,
        )  # fmt: skip
    headers: dict[str, str] = {}
    params: dict[str, str] = {}
    if isinstance(auth, ApiKeyAuth):
        (headers if auth.location == "header" else params)[auth.name] = fill(auth.value)
    elif isinstance(auth, BasicAuth):
        pair = f"{fill(auth.username)}:{fill(auth.password)}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    elif isinstance(auth, BearerAuth):
        headers["Authorization"] = f"Bearer {fill(auth.token)}"
    elif isinstance(auth, HeaderAuth):
        headers.update({name: fill(value) for name, value in auth.headers.items()})
    else:
        assert isinstance(auth, NoAuth)
    redactor.add(*headers.values(), *params.values())
    for value in headers.values():
        redactor.add(value.partition(" ")[2])  # the token after "Basic " / "Bearer "
    return StaticAuth(headers, params, credential=credential, hint=hint)


def credential_name(preset: Preset) -> str:
    """What the admin calls the credentials, for messages: "access token", "API key", "user name and password"."""
    auth = preset.auth
    if isinstance(auth, OAuth2ClientCredentials | OAuth2RefreshToken | OAuth2AuthorizationCode):
        return "access token"
    names: list[str] = []
    for value in auth.model_dump(by_alias=True).values():
        texts = value.values() if isinstance(value, dict) else [value]
        for text in texts:
            if isinstance(text, str) and "{" in text:
                names.extend(n for n in Template.parse(text).names if n not in names)
    labels = []
    for name in names:
        try:
            labels.append(_lower_first(preset.setting(name).label))
        except KeyError:
            continue
    return " and ".join(labels) or "credentials"


def _lower_first(label: str) -> str:
    """``Access token`` → ``access token``, but ``API key`` stays ``API key``."""
    if re.match(r"^[A-Z][a-z]", label):
        return label[0].lower() + label[1:]
    return label
