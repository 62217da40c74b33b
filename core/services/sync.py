"""Syncs as the front ends see them: sync now, ask the scheduler for a sync, the history, the guard.

- :func:`sync_now` runs a sync in the foreground (the CLI's ``switchboard sync``, a TUI worker) under the
  integration's lease, so it never runs alongside a scheduled sync of the same integration on any node.
- :func:`request_sync` makes the integration due at once; whichever node runs the scheduler picks it up within
  a few seconds (``core.scheduler.POLL_INTERVAL``). For front ends that should not do the work themselves.
- :func:`list_runs`, :func:`sync_state`: what happened and what is next.
- :func:`set_sync_guard`: the share of records below which a sync is held back as suspicious.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.errors import InvalidInput, StaleUpdate
from core.models import Integration, SyncLease, SyncOutcome, SyncRun, SyncRunPublic, Tenant, utcnow
from core.runtime import Runtime
from core.scheduler import (
    EPOCH,
    ConnectorFactory,
    SyncBusy,
    busy_message,
    claim_now,
    next_run,
    node_of,
    run_claim,
)
from core.services.audit import Actor, record
from core.sync import ProgressCallback, SyncOptions


def _default_node() -> str:
    from core.serve import default_node_name

    return default_node_name()


async def sync_now(
    *,
    runtime: Runtime,
    integration_id: int,
    accept_shrink: bool = False,
    progress: ProgressCallback | None = None,
    node: str | None = None,
    connector_factory: ConnectorFactory | None = None,
    sync_options: SyncOptions | None = None,
) -> SyncRunPublic:
    """Sync one integration now, in the foreground; ``SyncBusy`` if it is being synced already.

    The run's failure (CRM refused, network, suspicious shrink) is in the returned run, not raised.
    """
    name = node or _default_node()
    claim = await asyncio.to_thread(
        claim_now, runtime.engine, integration_id=integration_id, node=name, now=utcnow(), trigger="manual"
    )
    return await run_claim(
        runtime,
        claim,
        node=name,
        connector_factory=connector_factory,
        accept_shrink=accept_shrink,
        progress=progress,
        sync_options=sync_options,
    )


def request_sync(*, session: Session, actor: Actor, integration: Integration) -> None:
    """Make the integration due now: a node running the scheduler starts its sync within seconds.

    ``SyncBusy`` if a sync of it is running right now.
    """
    now = utcnow()
    lease = session.get(SyncLease, integration.id)
    if lease is not None and lease.owner and lease.expires_at > now:
        raise SyncBusy(busy_message(lease.owner), field="integration")
    if lease is None:
        session.add(SyncLease(integration_id=integration.id or 0, owner="", expires_at=EPOCH, next_run_at=now))
    else:
        lease.next_run_at = now
        session.add(lease)
    record(
        session,
        actor=actor,
        action="integration.sync",
        tenant_id=integration.tenant_id,
        target=f"{integration.id}:{integration.name}",
    )
    session.flush()


def list_runs(*, session: Session, integration: Integration, limit: int = 20) -> list[SyncRunPublic]:
    """The integration's newest sync runs, newest first."""
    query = (
        select(SyncRun)
        .where(SyncRun.integration_id == integration.id)
        .order_by(col(SyncRun.started_at).desc(), col(SyncRun.id).desc())
        .limit(limit)
    )
    return [SyncRunPublic.model_validate(run, from_attributes=True) for run in session.exec(query)]


@dataclass(frozen=True, slots=True)
class SyncState:
    """Where an integration's syncing stands: the last run, the last good one, the next, who runs it now."""

    last_run: SyncRunPublic | None
    last_success: SyncRunPublic | None
    next_run_at: datetime | None
    running_on: str | None


def sync_state(*, session: Session, integration: Integration) -> SyncState:
    """The integration's sync status for a status line or an overview."""
    runs = list_runs(session=session, integration=integration, limit=1)
    success = session.exec(
        select(SyncRun)
        .where(SyncRun.integration_id == integration.id, SyncRun.outcome == SyncOutcome.SUCCESS)
        .order_by(col(SyncRun.started_at).desc(), col(SyncRun.id).desc())
        .limit(1)
    ).first()
    lease = session.get(SyncLease, integration.id)
    now = utcnow()
    running = node_of(lease.owner) if lease is not None and lease.owner and lease.expires_at > now else None
    upcoming = lease.next_run_at if lease is not None else None
    if upcoming is None:
        tenant_zone = _tenant_zone(session, integration)
        upcoming = next_run(integration.schedule, now, tenant_zone)
    return SyncState(
        last_run=runs[0] if runs else None,
        last_success=SyncRunPublic.model_validate(success, from_attributes=True) if success else None,
        next_run_at=upcoming,
        running_on=running,
    )


def _tenant_zone(session: Session, integration: Integration) -> str:
    tenant = session.get(Tenant, integration.tenant_id)
    return tenant.timezone if tenant else "UTC"


def set_sync_guard(
    *, session: Session, actor: Actor, integration: Integration, percent: int, expected_version: int | None = None
) -> Integration:
    """Set the share (0-100 %) of cached records below which a sync is held back as suspicious; 0: never."""
    if not isinstance(percent, int) or not 0 <= percent <= 100:
        raise InvalidInput(
            "give a whole percentage from 0 to 100 (50: a sync finding under half the cached records is held "
            "back; 0: never hold a sync back)",
            field="sync_guard_percent",
        )
    table = Integration.__table__  # type: ignore[attr-defined]
    version = integration.version if expected_version is None else expected_version
    result = session.execute(
        sa.update(table)
        .where(table.c.id == integration.id, table.c.version == version)
        .values(sync_guard_percent=percent, version=version + 1, updated_at=utcnow())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise StaleUpdate(
            f"the integration {integration.name!r} was changed by someone else after you opened it; "
            "reload it and make your change again",
            field="version",
        )
    session.refresh(integration)
    record(
        session,
        actor=actor,
        action="integration.update",
        tenant_id=integration.tenant_id,
        target=f"{integration.id}:{integration.name}",
        details={"sync_guard_percent": percent},
    )
    return integration
