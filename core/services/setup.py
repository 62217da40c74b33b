"""Connecting a CRM from a preset: check the settings, test the connection, store the integration.

The wizard and ``switchboard integration add`` go the same way: :func:`check_values` (the admin's values
against the preset), :func:`check_connection` (the first page of the first object type: does it work, how
many records, one sample), then :func:`add_integration` (settings stored, secret ones sealed with the
server's key, the preset's default notification fields and screen-pop scripts added), then the first sync
(:func:`core.services.sync.sync_now`). :func:`connect_integration` does all of it in that order and writes
nothing unless the connection test succeeds.

Secrets: the secret settings are sealed in the integration's ``secrets``; OAuth tokens (from a sign-in, a
client-credentials grant during the connection test, or a renewal during a sync) are kept apart by
:mod:`core.services.integration_tokens` (``read_tokens``, ``store_tokens``, ``token_saver``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from sqlmodel import Session

from core.connector import ConnectionTest, Connector, FetchedRecord, build_connector
from core.db import session_scope
from core.errors import NotFound
from core.models import Integration, IntegrationPublic, SyncRunPublic, Tenant
from core.presets import Preset, check_header_values, get_preset, validate_settings
from core.runtime import Runtime
from core.security import SecretBox
from core.services import integration_tokens, integrations, oauth, scripts
from core.services.audit import Actor
from core.sync import ProgressCallback

# --- values --------------------------------------------------------------------------------------------------


def check_values(preset: Preset, values: Mapping[str, str]) -> dict[str, str]:
    """The admin's values checked against the preset, defaults filled in (``InvalidInput`` names the field).

    Also refuses a value that would travel in an HTTP header but is not ASCII, before anything is saved.
    """
    checked = validate_settings(preset, values)
    check_header_values(preset, checked)
    return checked


def split_values(preset: Preset, values: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Checked values split into plain settings and secret ones (empty secrets are left out)."""
    secret = preset.secret_settings
    settings = {k: v for k, v in values.items() if k not in secret}
    secrets = {k: v for k, v in values.items() if k in secret and v}
    return settings, secrets


def stored_values(*, integration: Integration, box: SecretBox) -> tuple[dict[str, str], dict[str, str]]:
    """An integration's settings with its secrets opened, and its OAuth tokens: for the connector only."""
    values = {**integration.settings, **box.open(integration.secrets)}
    return values, integration_tokens.read_tokens(integration=integration, box=box)


# --- the connector -----------------------------------------------------------------------------------------


def open_connector(
    *, runtime: Runtime, integration_id: int, transport: httpx.AsyncBaseTransport | None = None
) -> Connector:
    """The connector of a stored integration; renewed OAuth tokens are stored again as they come."""
    with Session(runtime.engine) as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            raise NotFound(f"there is no integration {integration_id}", field="integration")
        preset = get_preset(integration.preset)
        values, tokens = stored_values(integration=integration, box=runtime.box)
        on_tokens = integration_tokens.token_saver(engine=runtime.engine, box=runtime.box, integration=integration)
        tenant = session.get(Tenant, integration.tenant_id)
    return build_connector(
        preset,
        values,
        tokens=tokens or None,
        on_tokens=on_tokens,
        transport=transport,
        tenant=tenant.slug if tenant else None,
    )


@dataclass(frozen=True)
class ConnectionCheck:
    """A successful connection test: records on the first page (or the total, if the CRM says), a sample.

    ``tokens`` are OAuth tokens obtained during the test, to be stored with the integration; never show them.
    """

    count: int | None
    sample: FetchedRecord | None
    object_types: list[str]
    tokens: dict[str, str] = field(default_factory=dict, repr=False)


async def check_connection(
    *,
    preset: Preset,
    values: Mapping[str, str],
    tokens: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    tenant: str | None = None,
) -> ConnectionCheck:
    """Fetch the first page of the first object type; ``ConnectorError`` says in admin terms what failed."""
    obtained: dict[str, str] = {}
    connector = build_connector(
        preset, values, tokens=tokens, on_tokens=obtained.update, transport=transport, tenant=tenant
    )
    try:
        test: ConnectionTest = await connector.test_connection()
    finally:
        await connector.aclose()
    return ConnectionCheck(test.count, test.sample, list(test.object_types), {**(tokens or {}), **obtained})


# --- storing ---------------------------------------------------------------------------------------------------


def add_integration(
    *,
    session: Session,
    actor: Actor,
    tenant: Tenant,
    box: SecretBox,
    preset: Preset,
    values: Mapping[str, str],
    name: str | None = None,
    schedule: str | None = None,
    tokens: Mapping[str, str] | None = None,
) -> Integration:
    """Store an integration of ``preset`` with the preset's notification fields and default scripts (audited)."""
    settings, secrets = split_values(preset, check_values(preset, values))
    integration = integrations.create_integration(
        session=session,
        actor=actor,
        tenant=tenant,
        box=box,
        preset=preset.key,
        name=name or preset.name,
        settings=settings,
        secrets=secrets,
        schedule=schedule,
        notification=[{"field": n.field, "label": n.label} for n in preset.default_notification],
    )
    if tokens and any(tokens.get(name) for name in ("access_token", "refresh_token")):
        integration_tokens.store_tokens(session=session, box=box, integration=integration, tokens=tokens)
    for default in preset.default_scripts:
        draft = scripts.ScriptDraft(
            name=default.name,
            url_template=default.url,
            when=default.when,
            auto_open=default.auto_open,
            integration_id=integration.id,
        )
        scripts.create_script(session=session, actor=actor, tenant=tenant, draft=draft)
    return integration


@dataclass(frozen=True)
class Connected:
    """What :func:`connect_integration` did: the integration, its connection test, its first sync."""

    integration: IntegrationPublic
    test: ConnectionCheck | None
    run: SyncRunPublic | None


async def connect_integration(
    *,
    runtime: Runtime,
    actor: Actor,
    tenant_slug: str,
    preset_key: str,
    values: Mapping[str, str],
    name: str | None = None,
    schedule: str | None = None,
    first_sync: bool = True,
    progress: ProgressCallback | None = None,
    node: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    oauth_state: str | None = None,
) -> Connected:
    """Check, test, store and (unless told not to) sync a new integration; nothing is stored if a check fails.

    Script-only presets have no connection to test and nothing to sync. ``oauth_state`` names the tenant's
    completed OAuth sign-in (:func:`core.services.oauth.begin_authorization`): its tokens are borrowed for the
    connection test and taken for good in the transaction that stores the integration, as the wizard does.
    """
    preset = get_preset(preset_key)
    checked = check_values(preset, values)
    if schedule is not None:
        schedule = integrations.check_schedule(schedule)
    signed_in = None if oauth_state is None else await asyncio.to_thread(_borrow, runtime, tenant_slug, oauth_state)
    test = (
        None
        if preset.is_script_only
        else await check_connection(
            preset=preset, values=checked, tokens=signed_in, transport=transport, tenant=tenant_slug
        )
    )

    def store() -> tuple[int, IntegrationPublic]:
        with session_scope(runtime.engine) as session:
            tenant = _tenant(session, tenant_slug)
            if oauth_state is not None:  # the test's tokens include these, renewed if the test renewed them
                oauth.take_tokens(session=session, box=runtime.box, tenant=tenant, state=oauth_state)
            integration = add_integration(
                session=session, actor=actor, tenant=tenant, box=runtime.box, preset=preset, values=checked,
                name=name, schedule=schedule, tokens=test.tokens if test else None,
            )  # fmt: skip
            session.flush()
            return integration.id or 0, integrations.to_public(session=session, integration=integration)

    integration_id, public = await asyncio.to_thread(store)
    run = None
    if first_sync and test is not None:
        from core.services.sync import sync_now

        run = await sync_now(
            runtime=runtime,
            integration_id=integration_id,
            progress=progress,
            node=node,
            connector_factory=lambda rt, iid: open_connector(runtime=rt, integration_id=iid, transport=transport),
        )
        public = await asyncio.to_thread(_public, runtime, integration_id)
    return Connected(public, test, run)


def _borrow(runtime: Runtime, tenant_slug: str, state: str) -> dict[str, str]:
    """A completed sign-in's tokens, read without taking them (the transaction is rolled back)."""
    with Session(runtime.engine) as session:
        tokens = oauth.take_tokens(session=session, box=runtime.box, tenant=_tenant(session, tenant_slug), state=state)
        session.rollback()
    return tokens


def _tenant(session: Session, slug: str) -> Tenant:
    from core.services.tenants import get_tenant

    return get_tenant(session=session, slug=slug)


def _public(runtime: Runtime, integration_id: int) -> IntegrationPublic:
    with Session(runtime.engine) as session:
        integration = integrations.get_integration(session=session, tenant=None, integration_id=integration_id)
        return integrations.to_public(session=session, integration=integration)
