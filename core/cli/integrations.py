"""Operator commands for integrations: list, show, enable, disable, delete; the browser sign-in of ``add``."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import click
from sqlmodel import Session

from core.cli.base import (
    State,
    cli,
    emit_fields,
    emit_json,
    emit_table,
    json_option,
    load_tenant,
    pass_state,
    tenant_option,
)
from core.errors import ConnectorError
from core.models import Integration, OAuthStatus, Tenant
from core.presets import OAuth2AuthorizationCode, Preset
from core.services import integrations as svc
from core.services import oauth


@cli.group("integration")
def integration_group() -> None:
    """The tenant's connected CRMs."""


def _load(session: Session, integration_id: int, tenant_slug: str | None) -> Integration:
    tenant: Tenant | None = load_tenant(session, tenant_slug) if tenant_slug else None
    return svc.get_integration(session=session, tenant=tenant, integration_id=integration_id)


@integration_group.command("list")
@tenant_option()
@json_option
@pass_state
def integration_list(state: State, tenant_slug: str, as_json: bool) -> None:
    """List a tenant's integrations in order."""
    with state.session() as session:
        tenant = load_tenant(session, tenant_slug)
        rows = [
            svc.to_public(session=session, integration=i) for i in svc.list_integrations(session=session, tenant=tenant)
        ]
    if as_json:
        emit_json(rows)
        return
    emit_table(
        [(i.id, i.name, i.preset, "enabled" if i.enabled else "disabled", i.numbers_cached, i.schedule) for i in rows],
        ["id", "name", "preset", "state", "numbers", "schedule"],
        empty=f"(no integrations in {tenant_slug})",
    )


@integration_group.command("show")
@click.argument("integration_id", type=int)
@tenant_option(required=False)
@json_option
@pass_state
def integration_show(state: State, integration_id: int, tenant_slug: str | None, as_json: bool) -> None:
    """Show one integration's settings (secrets hidden) and cache."""
    with state.session() as session:
        public = svc.to_public(session=session, integration=_load(session, integration_id, tenant_slug))
    if as_json:
        emit_json(public)
        return
    emit_fields(
        [
            ("id", public.id),
            ("tenant", public.tenant),
            ("name", public.name),
            ("preset", public.preset),
            ("state", "enabled" if public.enabled else "disabled"),
            ("schedule", public.schedule),
            ("numbers cached", public.numbers_cached),
            ("version", public.version),
            *[(f"setting {k}", v) for k, v in sorted(public.settings.items())],
            *[(f"notification {n + 1}", f"{f.label} ({f.field})") for n, f in enumerate(public.notification)],
        ]
    )


def _set_enabled(state: State, integration_id: int, tenant_slug: str | None, enabled: bool) -> None:
    with state.session() as session:
        integration = _load(session, integration_id, tenant_slug)
        svc.set_enabled(session=session, actor=state.actor, integration=integration, enabled=enabled)
        name = integration.name
    word = "enabled" if enabled else "disabled (its matches are suppressed; settings and cache are kept)"
    click.echo(f"integration {integration_id} ({name}) {word}")


@integration_group.command("enable")
@click.argument("integration_id", type=int)
@tenant_option(required=False)
@pass_state
def integration_enable(state: State, integration_id: int, tenant_slug: str | None) -> None:
    """Re-enable a disabled integration."""
    _set_enabled(state, integration_id, tenant_slug, True)


@integration_group.command("disable")
@click.argument("integration_id", type=int)
@tenant_option(required=False)
@pass_state
def integration_disable(state: State, integration_id: int, tenant_slug: str | None) -> None:
    """Disable an integration: matches suppressed, nothing removed."""
    _set_enabled(state, integration_id, tenant_slug, False)


@integration_group.command("delete")
@click.argument("integration_id", type=int)
@tenant_option(required=False)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def integration_delete(state: State, integration_id: int, tenant_slug: str | None, yes: bool) -> None:
    """Erase an integration with its settings, scripts and cached data. Cannot be undone."""
    with state.session() as session:
        integration = _load(session, integration_id, tenant_slug)
        if not yes:
            click.confirm(
                f"Delete integration {integration.id} ({integration.name}) with all its settings and "
                "cached data? This cannot be undone",
                abort=True,
            )
        name = integration.name
        svc.delete_integration(session=session, actor=state.actor, integration=integration)
    click.echo(f"integration {integration_id} ({name}) deleted")


# --- OAuth sign-in for ``integration add`` ----------------------------------------------------------------

POLL_INTERVAL = 1.0
"""Seconds between looks at a started sign-in while ``integration add`` waits for the admin's browser."""

RUN_AGAIN = "Run `switchboard integration add` again."

INTERRUPTED = 130
"""The exit code after Ctrl+C, as shells report a command ended by SIGINT."""


@contextmanager
def browser_sign_in(
    state: State, *, tenant_slug: str, preset: Preset, values: Mapping[str, str], timeout: float | None
) -> Iterator[str | None]:
    """For a preset that signs in in a browser: start the sign-in, wait for it, and give its ``state``.

    Yields None for other presets. The body (the connection test and the storing) takes the tokens; if it
    fails, or the wait ends without a sign-in (declined, expired, ``timeout`` seconds, Ctrl+C), the sign-in
    is cancelled, so that tokens the CRM sends later are never kept, and nothing is stored.
    """
    if not isinstance(preset.auth, OAuth2AuthorizationCode):
        yield None
        return
    with state.session() as session:
        pending = oauth.begin_authorization(
            session=session, actor=state.actor, tenant=load_tenant(session, tenant_slug), box=state.runtime.box,
            preset_key=preset.key, settings=values, redirect_base=state.runtime.settings.public_base_url(),
        )  # fmt: skip
    try:
        _show_sign_in(preset, pending, oauth.callback_problem(pending.redirect_uri))
        _wait_for_sign_in(state, tenant_slug, preset, pending, timeout)
        click.echo(f"signed in at {preset.name}; testing the connection", err=True)
        yield pending.state
    except KeyboardInterrupt:
        if not _cancel(state, tenant_slug, pending.state):
            raise  # the integration was stored: the interrupted step after it says what happened
        click.echo(f"\nsign-in at {preset.name} cancelled; nothing was stored", err=True)
        sys.exit(INTERRUPTED)
    except BaseException:
        _cancel(state, tenant_slug, pending.state)
        raise


def _show_sign_in(preset: Preset, pending: oauth.PendingAuthorization, problem: str | None) -> None:
    """Tell the admin where to sign in, where the CRM sends the browser back, and how long it may take."""
    until = pending.expires_at.strftime("%H:%M UTC")
    if problem is not None:
        click.echo(
            f"warning: {problem}: start `switchboard serve` there, or set SWITCHBOARD_PUBLIC_URL to the address "
            "where it runs (`switchboard serve` prints it)",
            err=True,
        )
    click.echo(
        f"To connect {preset.name}, open this address in a browser and sign in:\n\n  {pending.url}\n\n"
        f"{preset.name} sends the browser back to {pending.redirect_uri}: `switchboard serve` must be running "
        "and reachable there from the browser (SWITCHBOARD_PUBLIC_URL sets that address), and it must be "
        f"registered with {preset.name} as the redirect URI.\n"
        f"Waiting for the sign-in until {until} (Ctrl+C cancels)...",
        err=True,
    )


def _wait_for_sign_in(
    state: State, tenant_slug: str, preset: Preset, pending: oauth.PendingAuthorization, timeout: float | None
) -> None:
    """Poll until the sign-in is completed; ``ConnectorError`` when it failed, expired or ``timeout`` passed.

    Ctrl+C is taken between looks, never in the middle of a database call (where the driver would turn it into
    a database error), and raised as ``KeyboardInterrupt``.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    interrupted = threading.Event()
    with _ctrl_c_sets(interrupted):
        while not interrupted.is_set():
            with state.session() as session:
                tenant = load_tenant(session, tenant_slug)
                status = oauth.authorization_status(session=session, tenant=tenant, state=pending.state)
            if status.status is OAuthStatus.COMPLETED:
                return
            if status.finished:
                reason = status.error or f"The sign-in at {preset.name} did not succeed."
                raise ConnectorError(
                    f"{reason.replace(oauth.START_AGAIN, RUN_AGAIN)} Nothing was stored.", field="sign-in"
                )
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ConnectorError(
                    f"Nobody signed in at {preset.name} within {timeout:g} seconds; nothing was stored. {RUN_AGAIN}",
                    field="sign-in",
                )
            interrupted.wait(POLL_INTERVAL if left is None else min(POLL_INTERVAL, left))
    raise KeyboardInterrupt


@contextmanager
def _ctrl_c_sets(event: threading.Event) -> Iterator[None]:
    """While the block runs, Ctrl+C (SIGINT) sets ``event`` instead of raising (in the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: event.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _cancel(state: State, tenant_slug: str, oauth_state: str) -> bool:
    """Cancel the sign-in unless its tokens were taken; whether it was cancelled."""
    with state.session() as session:
        tenant = load_tenant(session, tenant_slug)
        return oauth.cancel_authorization(session=session, actor=state.actor, tenant=tenant, state=oauth_state)
