"""Integrations: a tenant's connected CRMs, their settings (secrets sealed), status, enable/disable/delete."""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from croniter import croniter
from sqlmodel import Session, col, func, select

from core.errors import InvalidInput, NotFound, StaleUpdate
from core.models import (
    CachedNumber,
    Integration,
    IntegrationPublic,
    NotificationField,
    Tenant,
    utcnow,
)
from core.security import SecretBox
from core.services.audit import Actor, record


def default_schedule(*, tenant_slug: str, name: str) -> str:
    """Nightly, at a minute in 00:00-05:59 (tenant time) spread by a hash, so tenants don't all sync at once."""
    digest = int.from_bytes(hashlib.sha256(f"{tenant_slug}/{name}".encode()).digest()[:4], "big")
    minutes = digest % 360
    return f"{minutes % 60} {minutes // 60} * * *"


def check_schedule(schedule: str) -> str:
    """A five-field cron expression, e.g. ``30 2 * * *`` for 02:30 every night."""
    value = " ".join((schedule or "").split())
    if len(value.split(" ")) != 5 or not croniter.is_valid(value):
        raise InvalidInput(
            f"{schedule!r} is not a cron schedule: give five fields (minute hour day month weekday), "
            "e.g. '30 2 * * *' for 02:30 every night",
            field="schedule",
        )
    return value


def _check_name(name: str) -> str:
    value = (name or "").strip()
    if not value or len(value) > 200:
        raise InvalidInput("give the integration a name of 1-200 characters", field="name")
    return value


def _check_notification(fields: list[dict[str, str]]) -> list[dict[str, str]]:
    result = []
    for index, item in enumerate(fields):
        field = str(item.get("field", "")).strip()
        label = str(item.get("label", "")).strip() or field
        if not field:
            raise InvalidInput(f"notification field {index + 1} has no CRM field", field="notification")
        result.append({"field": field, "label": label[:100]})
    return result


def create_integration(
    *,
    session: Session,
    actor: Actor,
    tenant: Tenant,
    box: SecretBox,
    preset: str,
    name: str,
    settings: dict[str, str],
    secrets: dict[str, str] | None = None,
    schedule: str | None = None,
    notification: list[dict[str, str]] | None = None,
    enabled: bool = True,
) -> Integration:
    """Store a new integration (settings already validated against the preset by the caller)."""
    clean_name = _check_name(name)
    cron = check_schedule(schedule) if schedule else default_schedule(tenant_slug=tenant.slug, name=clean_name)
    last = session.exec(select(func.max(Integration.position)).where(Integration.tenant_id == tenant.id)).one()
    integration = Integration(
        tenant_id=tenant.id or 0,
        preset=preset,
        name=clean_name,
        enabled=enabled,
        schedule=cron,
        position=0 if last is None else last + 1,
        settings=dict(settings),
        secrets=box.seal(dict(secrets or {})),
        notification=_check_notification(notification or []),
    )
    session.add(integration)
    session.flush()
    record(
        session,
        actor=actor,
        action="integration.create",
        tenant_id=tenant.id,
        target=f"{integration.id}:{clean_name}",
        details={
            "preset": preset,
            "settings": dict(settings),
            "secrets": sorted(secrets or {}),
            "schedule": cron,
        },
    )
    return integration


def get_integration(*, session: Session, tenant: Tenant | None, integration_id: int) -> Integration:
    """The integration with this id; when a tenant is given, only if it belongs to that tenant."""
    integration = session.get(Integration, integration_id)
    if integration is None or (tenant is not None and integration.tenant_id != tenant.id):
        raise NotFound(
            f"there is no integration {integration_id}"
            + (f" in tenant {tenant.slug}" if tenant else "")
            + "; `switchboard integration list --tenant SLUG` shows them",
            field="integration",
        )
    return integration


def numbers_cached(*, session: Session, integration: Integration) -> int:
    """How many numbers the integration's active cache generation holds."""
    if integration.active_generation is None:
        return 0
    return session.exec(
        select(func.count())
        .select_from(CachedNumber)
        .where(
            CachedNumber.integration_id == integration.id,
            CachedNumber.generation == integration.active_generation,
        )
    ).one()


def to_public(*, session: Session, integration: Integration) -> IntegrationPublic:
    """What may leave the process: settings without secrets, plus the number of cached numbers."""
    tenant = session.get(Tenant, integration.tenant_id)
    return IntegrationPublic(
        id=integration.id or 0,
        tenant=tenant.slug if tenant else "",
        preset=integration.preset,
        name=integration.name,
        enabled=integration.enabled,
        schedule=integration.schedule,
        position=integration.position,
        settings=dict(integration.settings),
        notification=[NotificationField(**n) for n in integration.notification],
        numbers_cached=numbers_cached(session=session, integration=integration),
        version=integration.version,
        created_at=integration.created_at,
        updated_at=integration.updated_at,
    )


def list_integrations(*, session: Session, tenant: Tenant) -> list[Integration]:
    """The tenant's integrations in their configured order."""
    query = select(Integration).where(Integration.tenant_id == tenant.id)
    return list(session.exec(query.order_by(col(Integration.position), col(Integration.id))).all())


def _bump(session: Session, integration: Integration, expected_version: int | None, values: dict[str, Any]) -> None:
    """Write ``values`` only if nobody saved a newer version since ``expected_version`` was read."""
    version = integration.version if expected_version is None else expected_version
    result = session.execute(
        sa.update(Integration)
        .where(col(Integration.id) == integration.id, col(Integration.version) == version)
        .values(version=version + 1, updated_at=utcnow(), **values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise StaleUpdate(
            f"the integration {integration.name!r} was changed by someone else after you opened it; "
            "reload it and make your change again",
            field="version",
        )
    session.refresh(integration)


def set_enabled(
    *,
    session: Session,
    actor: Actor,
    integration: Integration,
    enabled: bool,
    expected_version: int | None = None,
) -> Integration:
    """Disable (matches suppressed, nothing removed) or re-enable an integration."""
    _bump(session, integration, expected_version, {"enabled": enabled})
    record(
        session,
        actor=actor,
        action="integration.enable" if enabled else "integration.disable",
        tenant_id=integration.tenant_id,
        target=f"{integration.id}:{integration.name}",
    )
    return integration


def update_integration(
    *,
    session: Session,
    actor: Actor,
    integration: Integration,
    box: SecretBox,
    expected_version: int,
    name: str | None = None,
    settings: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    schedule: str | None = None,
    notification: list[dict[str, str]] | None = None,
) -> Integration:
    """Change an integration's configuration; refused if someone saved a newer version meanwhile."""
    values: dict[str, Any] = {}
    details: dict[str, Any] = {}
    if name is not None:
        values["name"] = details["name"] = _check_name(name)
    if settings is not None:
        values["settings"] = details["settings"] = dict(settings)
    if secrets is not None:
        merged = {**box.open(integration.secrets), **secrets}
        values["secrets"] = box.seal(merged)
        details["secrets_changed"] = sorted(secrets)
    if schedule is not None:
        values["schedule"] = details["schedule"] = check_schedule(schedule)
    if notification is not None:
        values["notification"] = details["notification"] = _check_notification(notification)
    _bump(session, integration, expected_version, values)
    record(
        session,
        actor=actor,
        action="integration.update",
        tenant_id=integration.tenant_id,
        target=f"{integration.id}:{integration.name}",
        details=details,
    )
    return integration


def delete_integration(*, session: Session, actor: Actor, integration: Integration) -> None:
    """Erase the integration, its scripts, its sync history and its cached data, for good."""
    target = f"{integration.id}:{integration.name}"
    tenant_id = integration.tenant_id
    session.execute(sa.delete(CachedNumber).where(col(CachedNumber.integration_id) == integration.id))
    session.delete(integration)
    session.flush()
    record(session, actor=actor, action="integration.delete", tenant_id=tenant_id, target=target)


def read_secrets(*, integration: Integration, box: SecretBox) -> dict[str, str]:
    """The integration's secret settings, decrypted, for the connector only: never print or log them."""
    return box.open(integration.secrets)
