"""Keeping an integration's OAuth tokens: sealed in their own column and bound to the credentials they were
issued for.

Tokens live in ``Integration.oauth_tokens``, apart from the admin's ``secrets``: a refresh writes that one
column with a targeted ``UPDATE`` and never touches ``version``, so it neither refuses an admin's concurrent
edit (a version bump would) nor is overwritten by it (``update_integration`` re-seals ``secrets`` from the
copy the admin loaded, which would put back a refresh token the CRM has since retired). The tokens are
sealed together with a digest of the credentials they were issued for (the settings the preset's ``[auth]``
table uses): once the admin changes those, the old tokens are no longer used.

Syncs build their connector with ``tokens=read_tokens(...)`` and ``on_tokens=token_saver(...)``; the sign-in
itself (:mod:`core.services.oauth`) hands a new integration its first tokens through :func:`store_tokens`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col

from core.connector import TokenCallback
from core.db import session_scope
from core.errors import InvalidInput, NotFound
from core.models import Integration
from core.presets import Template, get_preset, validate_settings
from core.security import SecretBox

log = logging.getLogger(__name__)

_CREDENTIALS_KEY = "__credentials__"  # inside the sealed tokens: the digest of the credentials they belong to


def store_tokens(*, session: Session, box: SecretBox, integration: Integration, tokens: Mapping[str, str]) -> None:
    """Keep OAuth ``tokens`` for ``integration``, sealed, in its own column (in the caller's transaction).

    Neither ``version`` nor ``updated_at`` changes: a token refresh is not a configuration change, must not
    refuse an admin's concurrent save, and ``update_integration`` never writes this column, so the admin's save
    cannot put back a retired refresh token either. The tokens are bound to the credentials ``integration``
    holds now (see :func:`read_tokens`).
    """
    _write_tokens(session, integration, _seal_tokens(box, tokens, credentials_digest(integration=integration, box=box)))


def read_tokens(*, integration: Integration, box: SecretBox) -> dict[str, str]:
    """The integration's OAuth tokens for ``build_connector(tokens=...)``; never print or log them.

    Empty when there are none, or when they were issued for credentials the admin has since changed (then the
    connector starts afresh from the settings, or asks the admin to sign in again).
    """
    stored = box.open(integration.oauth_tokens)
    bound_to = stored.pop(_CREDENTIALS_KEY, None)
    if not stored:
        return {}
    if bound_to != credentials_digest(integration=integration, box=box):
        log.info("integration %s: its OAuth tokens belong to credentials changed since; not using them", integration.id)
        return {}
    return stored


def token_saver(*, engine: Engine, box: SecretBox, integration: Integration) -> TokenCallback:
    """An ``on_tokens`` callback for ``build_connector`` that keeps renewed tokens (its own short transaction).

    Bound to the credentials ``integration`` holds now, i.e. those the connector is built with. A database
    failure is logged, not raised: the sync goes on with the tokens it has. The write is a single ``UPDATE``
    on the event loop, made at most once per token renewal.
    """
    digest = credentials_digest(integration=integration, box=box)
    integration_id = integration.id

    def save(tokens: dict[str, str]) -> None:
        sealed = _seal_tokens(box, tokens, digest)
        try:
            with session_scope(engine) as session:
                _write_tokens(session, integration, sealed, integration_id=integration_id)
        except sa.exc.SQLAlchemyError as exc:
            log.error(
                "integration %s: the renewed OAuth tokens could not be stored (%s); if the CRM retired the old "
                "refresh token, the admin will have to sign in again", integration_id, type(exc).__name__,
            )  # fmt: skip

    return save


def _seal_tokens(box: SecretBox, tokens: Mapping[str, str], digest: str) -> str:
    clean = clean_tokens(tokens)
    if not clean.get("access_token") and not clean.get("refresh_token"):
        raise InvalidInput("there are no OAuth tokens to store (no access or refresh token)", field="tokens")
    return box.seal({**clean, _CREDENTIALS_KEY: digest})


def clean_tokens(tokens: Mapping[str, Any]) -> dict[str, str]:
    """The tokens as strings, without empty ones or the credentials digest."""
    return {str(k): str(v) for k, v in tokens.items() if v is not None and str(v) != "" and k != _CREDENTIALS_KEY}


def _write_tokens(
    session: Session, integration: Integration, sealed: str, *, integration_id: int | None = None
) -> None:
    target = integration.id if integration_id is None else integration_id
    session.execute(
        sa.update(Integration).where(col(Integration.id) == target).values(oauth_tokens=sealed),
        execution_options={"synchronize_session": False},
    )
    set_committed_value(integration, "oauth_tokens", sealed)


def credentials_digest(*, integration: Integration, box: SecretBox) -> str:
    """A digest of the settings the preset's ``[auth]`` table uses (all settings if the preset is unknown).

    Kept only inside the sealed tokens, so it reveals nothing; it changes when the admin changes the
    credentials the tokens were issued for.
    """
    values = {**integration.settings, **box.open(integration.secrets)}
    material = json.dumps(_auth_values(integration.preset, values), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def _auth_values(preset_key: str, values: dict[str, str]) -> dict[str, str]:
    try:
        preset = get_preset(preset_key)
    except NotFound:  # a preset made for a test, or one removed since: bind to every setting
        return values
    try:
        effective = validate_settings(preset, values)
    except InvalidInput:
        return values
    names: set[str] = set()
    for text in _strings(preset.auth.model_dump()):
        try:
            names.update(Template.parse(text).names)
        except ValueError:
            continue
    return {name: effective[name] for name in sorted(names) if name in effective}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _strings(item)]
    return []
