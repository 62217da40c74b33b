"""Operator commands for integrations: list, show, enable, disable, delete."""

from __future__ import annotations

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
from core.models import Integration, Tenant
from core.services import integrations as svc


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
