"""The audit log: who changed what, when, in which tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from core.models import AuditEvent, AuditEventPublic


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: a signed-in admin (with their tenant) or the operator at the command line."""

    name: str
    tenant_id: int | None = None
    address: str = ""


OPERATOR = Actor(name="operator")


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    tenant_id: int | None,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to the current transaction; ``details`` must never hold secrets."""
    event = AuditEvent(tenant_id=tenant_id, actor=actor.name, action=action, target=target, details=details or {})
    session.add(event)
    return event


def list_events(
    *, session: Session, tenant_id: int, limit: int = 200, actions: tuple[str, ...] | None = None
) -> list[AuditEventPublic]:
    """The newest events of one tenant, newest first."""
    query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if actions:
        query = query.where(col(AuditEvent.action).in_(actions))
    query = query.order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc()).limit(limit)
    return [AuditEventPublic.model_validate(e, from_attributes=True) for e in session.exec(query)]
