"""OAuth2 sign-in (authorization code) for the wizard and the CLI.

The flow, end to end:

1. The wizard calls :func:`begin_authorization` with the preset and the admin's settings; it gets the CRM's
   sign-in address to show (or open) and a ``state`` to wait on. A pending row keeps, for 15 minutes, what the
   answer needs: the settings (secret ones sealed), the PKCE verifier (sealed) and the redirect URI.
2. The admin signs in at the CRM, which sends the browser to the HTTP shim's ``GET /oauth/callback`` with a
   ``code`` and the ``state``; the shim calls :func:`complete_authorization`, which trades the code for tokens
   exactly once and keeps them sealed on the row.
3. The wizard polls :func:`authorization_status` (tenant-scoped) until the sign-in is completed or failed;
   on saving, the setup use-case calls :func:`take_tokens`, then
   :func:`core.services.integration_tokens.store_tokens` for the new integration, which keeps them from then on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

import httpx
import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.connector import RetryPolicy, Timeouts, authorization_url, exchange_code
from core.errors import (
    ConfigurationError,
    ConnectorError,
    InvalidInput,
    NotFound,
    PresetError,
    SwitchboardError,
)
from core.models import OAuthAuthorization, OAuthStatus, Tenant, utcnow
from core.presets import OAuth2AuthorizationCode, Preset, get_preset, validate_settings
from core.security import SecretBox
from core.services.audit import Actor, record
from core.services.integration_tokens import clean_tokens

log = logging.getLogger(__name__)

CALLBACK_PATH = "/oauth/callback"
"""Where the CRM sends the admin's browser back; the redirect URI is the shim's public address plus this."""

AUTHORIZATION_LIFETIME = timedelta(minutes=15)
"""How long a started sign-in waits for the CRM's answer."""

RETENTION = timedelta(days=1)
"""How long finished or expired sign-ins are kept (for the wizard to read their outcome) before removal."""

EXCHANGE_TIMEOUTS = Timeouts(connect=10.0, read=20.0)
EXCHANGE_RETRY = RetryPolicy(max_attempts=2, base_delay=1.0, max_delay=3.0, max_total=10.0)
"""The admin's browser waits for the code exchange: try twice, briefly."""

MAX_STATE = 200
MAX_CODE = 4096
MAX_ERROR_TEXT = 300

START_AGAIN = "Go back to the wizard and choose Connect again."


@dataclass(frozen=True, slots=True)
class PendingAuthorization:
    """A started sign-in: the address to open, the ``state`` to wait on, until when, and the redirect URI.

    ``redirect_uri`` is what the admin must register with the CRM (the shim's ``/oauth/callback``).
    """

    state: str
    url: str
    expires_at: datetime
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class AuthorizationStatus:
    """What the wizard shows while it waits: ``pending``, ``completed``, ``failed``, ``expired`` or ``used``.

    ``error`` says, in the admin's terms, what went wrong (for ``failed`` and ``expired``).
    """

    status: OAuthStatus
    crm: str
    error: str | None
    expires_at: datetime

    @property
    def finished(self) -> bool:
        """Whether waiting longer can change anything."""
        return self.status is not OAuthStatus.PENDING


@dataclass(frozen=True, slots=True)
class CompletedAuthorization:
    """A sign-in that the CRM confirmed: its tokens are stored, sealed, for the wizard to take."""

    crm: str
    preset: str
    tenant_id: int


# --------------------------------------------------------------------------------------------- begin


def redirect_uri_for(redirect_base: str) -> str:
    """The redirect URI for a shim reachable at ``redirect_base`` (e.g. ``Settings.public_base_url()``)."""
    return redirect_base.rstrip("/") + CALLBACK_PATH


def callback_problem(redirect_uri: str, *, timeout: float = 2.0) -> str | None:
    """Why a browser sent back to ``redirect_uri`` may find no shim there, as seen from here; None if one answers.

    Asks ``/healthz`` at the same address. Only advice: a browser may reach an address this machine cannot
    (or the other way round), so callers warn and go on.
    """
    base = redirect_uri.removesuffix(CALLBACK_PATH)
    try:
        response = httpx.get(base + "/healthz", timeout=timeout)
        body = response.json()
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return f"nothing answered at {base} from here ({type(exc).__name__})"
    except ValueError:
        body = None
    if response.status_code in (200, 503) and isinstance(body, dict) and "database" in body:
        return None
    return f"{base} answered, but not as switchboard's HTTP shim (HTTP {response.status_code})"


def begin_authorization(
    *,
    session: Session,
    actor: Actor,
    tenant: Tenant,
    box: SecretBox,
    preset_key: str,
    settings: Mapping[str, str],
    redirect_base: str,
    lifetime: timedelta = AUTHORIZATION_LIFETIME,
) -> PendingAuthorization:
    """Start an OAuth sign-in with the admin's ``settings`` (checked against the preset; secret ones sealed).

    Returns the address of the CRM's sign-in page and the ``state`` to poll :func:`authorization_status` with;
    ``redirect_base`` is where browsers reach the shim (``runtime.settings.public_base_url()``). Raises
    ``InvalidInput`` naming the setting for bad settings, ``PresetError`` for a preset that does not sign in
    this way, ``NotFound`` for an unknown preset. Runs in the caller's transaction.
    """
    preset = get_preset(preset_key)
    if not isinstance(preset.auth, OAuth2AuthorizationCode):
        raise PresetError(f"{preset.name} does not sign in through OAuth (authorization code)", field="preset")
    values = validate_settings(preset, settings)
    if not redirect_base.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"the shim's public address {redirect_base!r} is not a web address; set SWITCHBOARD_PUBLIC_URL",
            field="public_url",
        )
    redirect_uri = redirect_uri_for(redirect_base)
    request = authorization_url(preset, values, redirect_uri=redirect_uri)
    given = {str(name): str(value) for name, value in settings.items() if value is not None}
    hidden = {name: value for name, value in given.items() if name in preset.secret_settings}
    now = utcnow()
    purge_authorizations(session=session, now=now)
    row = OAuthAuthorization(
        state_digest=state_digest(request.state),
        tenant_id=tenant.id or 0,
        actor=actor.name[:254],
        preset=preset.key,
        settings={name: value for name, value in given.items() if name not in hidden},
        secrets=box.seal(hidden),
        code_verifier=box.seal({"code_verifier": request.code_verifier}) if request.code_verifier else "",
        redirect_uri=redirect_uri,
        status=OAuthStatus.PENDING,
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    session.flush()
    record(
        session, actor=actor, action="oauth.begin", tenant_id=tenant.id, target=preset.key,
        details={"preset": preset.key, "redirect_uri": redirect_uri, "settings": dict(row.settings),
                 "secrets": sorted(hidden)},
    )  # fmt: skip
    return PendingAuthorization(request.state, request.url, row.expires_at, redirect_uri)


def state_digest(state: str) -> str:
    """The stored form of a ``state``: only its SHA-256 is kept, like an API token's."""
    return hashlib.sha256(state.encode("utf-8", "replace")).hexdigest()


def purge_authorizations(*, session: Session, now: datetime | None = None) -> int:
    """Remove sign-ins that expired more than :data:`RETENTION` ago (with any tokens never taken)."""
    cutoff = (now or utcnow()) - RETENTION
    result = session.execute(
        sa.delete(OAuthAuthorization).where(col(OAuthAuthorization.expires_at) < cutoff),
        execution_options={"synchronize_session": False},
    )
    return _rowcount(result)


# --------------------------------------------------------------------------------------------- status


def authorization_status(*, session: Session, tenant: Tenant, state: str) -> AuthorizationStatus:
    """How the tenant's sign-in ``state`` stands; another tenant's sign-in is ``NotFound``, as an unknown one."""
    row = _find(session, state, tenant=tenant)
    return _status_of(row, utcnow())


def _status_of(row: OAuthAuthorization, now: datetime) -> AuthorizationStatus:
    crm = crm_name(row.preset)
    status, error = OAuthStatus(row.status), row.error
    if status in (OAuthStatus.PENDING, OAuthStatus.EXCHANGING):
        status = OAuthStatus.PENDING
        if now >= row.expires_at:
            status, error = OAuthStatus.EXPIRED, _expired_message(crm)
    return AuthorizationStatus(status=status, crm=crm, error=error, expires_at=row.expires_at)


def crm_name(preset_key: str) -> str:
    """The CRM's name for messages ("SuperOffice"), or the preset key if the preset is gone."""
    try:
        return get_preset(preset_key).name
    except SwitchboardError:
        return preset_key


def _find(session: Session, state: str, *, tenant: Tenant | None = None) -> OAuthAuthorization:
    """The sign-in ``state`` names (of ``tenant`` when given); ``NotFound`` or ``InvalidInput`` otherwise."""
    if not state or len(state) > MAX_STATE:
        raise InvalidInput(
            "This is not an answer to a sign-in switchboard started (the state is missing or malformed). "
            + START_AGAIN,
            field="state",
        )
    query = select(OAuthAuthorization).where(OAuthAuthorization.state_digest == state_digest(state))
    row = session.exec(query.execution_options(populate_existing=True)).first()  # as stored now, not as cached
    if row is None or (tenant is not None and row.tenant_id != tenant.id):
        raise NotFound(
            "switchboard knows no sign-in with this state: it was never started here, or it finished more than "
            f"a day ago. {START_AGAIN}",
            field="state",
        )
    return row


def _expired_message(crm: str) -> str:
    minutes = int(AUTHORIZATION_LIFETIME.total_seconds() // 60)
    return f"The sign-in at {crm} was not finished within {minutes} minutes, so it has expired. {START_AGAIN}"


def _used_message(status: OAuthStatus, crm: str) -> str:
    if status is OAuthStatus.EXCHANGING:
        return f"This sign-in at {crm} is being completed right now (the page was probably opened twice)."
    if status is OAuthStatus.FAILED:
        return f"This sign-in at {crm} already failed; its answer cannot be used again. {START_AGAIN}"
    return (
        f"This sign-in at {crm} was already completed; an answer can be used only once. If the wizard does not "
        f"show {crm} as connected, choose Connect again there."
    )


# --------------------------------------------------------------------------------------------- complete


@dataclass(frozen=True, slots=True)
class _Claim:
    """What the code exchange needs, read from a row that is now marked as being exchanged."""

    row_id: int
    tenant_id: int
    actor: Actor
    preset: Preset
    settings: dict[str, str]
    redirect_uri: str
    code_verifier: str | None


async def complete_authorization(
    *,
    session: Session,
    box: SecretBox,
    state: str,
    code: str | None,
    error: str | None = None,
    error_description: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> CompletedAuthorization:
    """Finish the sign-in ``state`` names with the CRM's answer: trade ``code`` for tokens once, keep them sealed.

    ``error``/``error_description`` are what the CRM sends instead of a code when the admin declined. Raises a
    ``SwitchboardError`` in the admin's terms for an unknown, malformed, expired or already used state (nothing
    is changed) and for a refusal or a failed exchange (the sign-in is then marked failed, with the reason, for
    the wizard). Commits its own steps: the sign-in is claimed before the CRM is asked, so that it is used only
    once even if the answer arrives twice, on any node. The database work and the exchange run in worker
    threads, so the caller's event loop (the shim's, which answers lookups) is never held up.
    """
    claim = await asyncio.to_thread(_claim, session, box, state, code, error, error_description)
    assert code is not None  # _claim refused an answer without a code
    try:
        tokens = await asyncio.to_thread(_exchange, claim, state, code, transport)
    except SwitchboardError as exc:
        message = _sentence(exc.message) + " " + START_AGAIN
        await asyncio.to_thread(_finish_failed, session, claim, message)
        raise ConnectorError(message) from None
    except Exception as exc:
        log.error("OAuth sign-in %s: the code exchange failed with %s", claim.row_id, type(exc).__name__)
        message = (
            f"The sign-in at {claim.preset.name} could not be completed because of an internal error "
            f"({type(exc).__name__}); the server's log has details. {START_AGAIN}"
        )
        await asyncio.to_thread(_finish_failed, session, claim, message)
        raise ConnectorError(message) from None
    await asyncio.to_thread(_finish_completed, session, box, claim, tokens)
    return CompletedAuthorization(crm=claim.preset.name, preset=claim.preset.key, tenant_id=claim.tenant_id)


def _exchange(claim: _Claim, state: str, code: str, transport: httpx.AsyncBaseTransport | None) -> dict[str, str]:
    """Trade the code for tokens on an event loop of its own, in a worker thread.

    Setting up the HTTP client (loading the CA certificates) takes tens of milliseconds of CPU; on the shim's
    loop that would hold up every lookup meanwhile. The row was found by the state's digest: that lookup is
    the state check, so ``exchange_code``'s own comparison is a formality here.
    """
    return asyncio.run(
        exchange_code(
            claim.preset, claim.settings, code=code, state=state, expected_state=state,
            redirect_uri=claim.redirect_uri, code_verifier=claim.code_verifier, transport=transport,
            timeouts=EXCHANGE_TIMEOUTS, retry=EXCHANGE_RETRY,
        )
    )  # fmt: skip


def _claim(
    session: Session, box: SecretBox, state: str, code: str | None, error: str | None, description: str | None
) -> _Claim:
    """Check the answer against its row and mark the row as being exchanged (committed), or fail it."""
    row = _find(session, state)
    crm = crm_name(row.preset)
    if row.status != OAuthStatus.PENDING:  # a plain string as read from the database
        raise InvalidInput(_used_message(OAuthStatus(row.status), crm), field="state")
    if utcnow() >= row.expires_at:  # left as it is: authorization_status reports it as expired
        raise InvalidInput(_expired_message(crm), field="state")
    if error:
        _fail_and_raise(session, row, _provider_error_message(crm, error, description), ConnectorError)
    if not code or len(code) > MAX_CODE:
        message = f"{crm} sent the browser back without a usable sign-in code. {START_AGAIN}"
        _fail_and_raise(session, row, message, ConnectorError)
    try:
        preset = get_preset(row.preset)
        settings = {**row.settings, **box.open(row.secrets)}
        verifier = box.open(row.code_verifier).get("code_verifier")
    except SwitchboardError as exc:
        _fail_and_raise(session, row, _sentence(exc.message) + " " + START_AGAIN, ConnectorError)
    claim = _Claim(
        row_id=row.id or 0, tenant_id=row.tenant_id, actor=Actor(name=row.actor, tenant_id=row.tenant_id),
        preset=preset, settings=settings, redirect_uri=row.redirect_uri, code_verifier=verifier,
    )  # fmt: skip
    if not _transition(session, claim.row_id, OAuthStatus.PENDING, OAuthStatus.EXCHANGING):
        session.rollback()
        raise InvalidInput(_used_message(OAuthStatus.EXCHANGING, crm), field="state")
    session.commit()
    return claim


def _fail_and_raise(
    session: Session,
    row: OAuthAuthorization,
    message: str,
    kind: type[InvalidInput] | type[ConnectorError],
    *,
    field: str | None = None,
) -> NoReturn:
    """Mark a pending sign-in failed with ``message`` (if nobody finished it meanwhile) and raise it."""
    actor = Actor(name=row.actor, tenant_id=row.tenant_id)
    if _transition(session, row.id or 0, OAuthStatus.PENDING, OAuthStatus.FAILED, error=message):
        record(session, actor=actor, action="oauth.fail", tenant_id=row.tenant_id, target=row.preset,
               details={"error": message})  # fmt: skip
        session.commit()
        log.info("OAuth sign-in %s (tenant %s, %s) failed: %s", row.id, row.tenant_id, row.preset, message)
    else:
        session.rollback()
    raise kind(message, field=field)


def _finish_failed(session: Session, claim: _Claim, message: str) -> None:
    if _transition(session, claim.row_id, OAuthStatus.EXCHANGING, OAuthStatus.FAILED, error=message):
        record(session, actor=claim.actor, action="oauth.fail", tenant_id=claim.tenant_id, target=claim.preset.key,
               details={"error": message})  # fmt: skip
    session.commit()
    log.info("OAuth sign-in %s (tenant %s, %s) failed: %s", claim.row_id, claim.tenant_id, claim.preset.key, message)


def _finish_completed(session: Session, box: SecretBox, claim: _Claim, tokens: dict[str, str]) -> None:
    sealed = box.seal(clean_tokens(tokens))
    now = utcnow()
    if not _transition(session, claim.row_id, OAuthStatus.EXCHANGING, OAuthStatus.COMPLETED, tokens=sealed,
                       completed_at=now, error=None):  # fmt: skip
        session.rollback()
        raise InvalidInput(f"This sign-in at {claim.preset.name} was removed while it was completed. {START_AGAIN}")
    record(session, actor=claim.actor, action="oauth.complete", tenant_id=claim.tenant_id, target=claim.preset.key,
           details={"preset": claim.preset.key})  # fmt: skip
    session.commit()
    log.info("OAuth sign-in %s (tenant %s, %s) completed", claim.row_id, claim.tenant_id, claim.preset.key)


def _transition(session: Session, row_id: int, old: OAuthStatus, new: OAuthStatus, **values: Any) -> bool:
    """Move a sign-in from ``old`` to ``new`` status atomically; False if it was not in ``old`` any more."""
    result = session.execute(
        sa.update(OAuthAuthorization)
        .where(col(OAuthAuthorization.id) == row_id, col(OAuthAuthorization.status) == old.value)
        .values(status=new.value, **values),
        execution_options={"synchronize_session": False},
    )
    return _rowcount(result) == 1


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


def _provider_error_message(crm: str, error: str, description: str | None) -> str:
    code = _printable(error, 60) or "error"
    text = _printable(description or "", MAX_ERROR_TEXT).rstrip(".")
    detail = f": {text}" if text and text != code else ""
    if code == "access_denied":
        return (
            f"{crm} did not give switchboard access (access_denied{detail}). {START_AGAIN} When {crm} asks "
            "whether switchboard may read your data, choose Allow."
        )
    return (
        f"{crm} did not complete the sign-in ({code}{detail}). {START_AGAIN} If it happens again, check the "
        f"client ID and the redirect address registered with {crm}."
    )


def _printable(text: str, limit: int) -> str:
    """``text`` without control characters, whitespace collapsed, at most ``limit`` characters."""
    kept = "".join(ch if not unicodedata.category(ch).startswith("C") else " " for ch in text)
    flat = " ".join(kept.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _sentence(message: str) -> str:
    message = message.strip()
    return message if message.endswith((".", "!", "?")) else message + "."


# --------------------------------------------------------------------------------------------- tokens


def take_tokens(*, session: Session, box: SecretBox, tenant: Tenant, state: str) -> dict[str, str]:
    """The tokens of the tenant's completed sign-in ``state``, for the new integration; they can be taken once.

    Runs in the caller's transaction: if creating the integration fails and rolls back, they can be taken again
    (which also lets the wizard borrow them for a connection test: take, test, roll back, then
    :func:`keep_renewed_tokens` if the test renewed them).
    Raises ``InvalidInput`` (field ``state``) while the sign-in is pending, or when it failed, expired or was
    already used; ``NotFound`` for an unknown state or another tenant's.
    """
    row = _find(session, state, tenant=tenant)
    status = _status_of(row, utcnow())
    if status.status is not OAuthStatus.COMPLETED:
        raise InvalidInput(_not_ready_message(status), field="state")
    tokens = box.open(row.tokens)
    if not _transition(session, row.id or 0, OAuthStatus.COMPLETED, OAuthStatus.USED, tokens=""):
        raise InvalidInput(_used_message(OAuthStatus.USED, status.crm), field="state")
    return tokens


def keep_renewed_tokens(
    *, session: Session, box: SecretBox, tenant: Tenant, state: str, tokens: Mapping[str, str]
) -> None:
    """Replace a completed sign-in's tokens with ones renewed while they were borrowed (in the caller's transaction).

    A connection test before saving may renew the access token; where the CRM retires a refresh token once it is
    used (Exact Online does), the sign-in must keep the new one, or saving would store a dead refresh token.
    """
    row = _find(session, state, tenant=tenant)
    status = _status_of(row, utcnow())
    if status.status is not OAuthStatus.COMPLETED:
        raise InvalidInput(_not_ready_message(status), field="state")
    clean = clean_tokens({**box.open(row.tokens), **tokens})
    _transition(session, row.id or 0, OAuthStatus.COMPLETED, OAuthStatus.COMPLETED, tokens=box.seal(clean))


def cancel_authorization(*, session: Session, actor: Actor, tenant: Tenant, state: str) -> bool:
    """Give up the tenant's sign-in ``state``: a later answer from the CRM is refused, tokens received are dropped.

    For a front end that stops waiting (Ctrl+C, a timeout, a failed connection test). Returns False, changing
    nothing, when the sign-in is no longer pending or completed (its tokens were taken, or it failed). Runs in
    the caller's transaction.
    """
    row = _find(session, state, tenant=tenant)
    message = f"The sign-in at {crm_name(row.preset)} was cancelled in switchboard. {START_AGAIN}"
    for old in (OAuthStatus.PENDING, OAuthStatus.COMPLETED):
        if _transition(session, row.id or 0, old, OAuthStatus.FAILED, error=message, tokens=""):
            record(session, actor=actor, action="oauth.cancel", tenant_id=tenant.id, target=row.preset,
                   details={"was": old.value})  # fmt: skip
            return True
    return False


def _not_ready_message(status: AuthorizationStatus) -> str:
    if status.status is OAuthStatus.PENDING:
        return f"The sign-in at {status.crm} is not finished yet: sign in in the browser tab the wizard opened."
    if status.status is OAuthStatus.USED:
        return f"The tokens of this sign-in at {status.crm} were already stored in an integration. {START_AGAIN}"
    return status.error or f"The sign-in at {status.crm} did not succeed. {START_AGAIN}"
