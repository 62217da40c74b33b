"""The schema on SQLite and PostgreSQL: migrations, pragmas, round trips, cascades."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from core.db import current_revision, init_db, make_engine
from core.models import (
    AuditEvent,
    CachedNumber,
    CachedRecord,
    Integration,
    Script,
    SyncRun,
)
from core.runtime import Runtime
from core.services import integrations
from core.services.audit import OPERATOR
from tests.factories import make_integration, make_tenant


def test_init_is_idempotent_and_reports_revision(engine: Engine) -> None:
    first = current_revision(engine)
    assert first is not None
    assert init_db(engine) == first
    assert init_db(engine) == first


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection:
        assert connection.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1


def test_datetimes_come_back_aware_in_utc(session: Session) -> None:
    tenant = make_tenant(session)
    session.commit()
    session.expire_all()
    assert tenant.created_at.tzinfo is not None
    assert tenant.created_at.utcoffset().total_seconds() == 0


def test_naive_datetime_is_refused(session: Session) -> None:
    tenant = make_tenant(session)
    tenant.created_at = datetime(2026, 1, 1)  # naive
    with pytest.raises(sa.exc.StatementError):
        session.commit()


def test_delete_integration_erases_scripts_cache_and_runs(session: Session, runtime: Runtime) -> None:
    tenant = make_tenant(session)
    keep = make_integration(session, tenant, runtime.box, name="Kept")
    gone = make_integration(session, tenant, runtime.box, name="Gone")
    for integ in (keep, gone):
        record = CachedRecord(integration_id=integ.id, generation=1, record_id="1", fields={"DisplayName": "x"})
        session.add(record)
        session.flush()
        session.add(
            CachedNumber(
                integration_id=integ.id,
                generation=1,
                record_pk=record.id,
                e164="+31201234567",
                suffix="7654321021",
                raw="020 1234567",
            )
        )
        session.add(Script(tenant_id=tenant.id, integration_id=integ.id, name="pop", url_template="https://x"))
        session.add(SyncRun(tenant_id=tenant.id, integration_id=integ.id, started_at=datetime.now(UTC)))
    session.commit()

    integrations.delete_integration(session=session, actor=OPERATOR, integration=gone)
    session.commit()

    for model in (CachedNumber, CachedRecord, Script, SyncRun):
        owners = session.exec(select(model.integration_id)).all()
        assert owners == [keep.id], model.__name__
    assert session.exec(select(func.count()).select_from(Integration)).one() == 1
    actions = session.exec(select(AuditEvent.action)).all()
    assert "integration.delete" in actions


def test_secrets_are_encrypted_at_rest(session: Session, runtime: Runtime) -> None:
    tenant = make_tenant(session)
    integ = make_integration(session, tenant, runtime.box, secrets={"access_token": "pat-na1-TOPSECRET"})
    session.commit()
    raw = session.execute(sa.text("select secrets, settings from integration where id = :id"), {"id": integ.id}).one()
    assert "TOPSECRET" not in raw[0] and "TOPSECRET" not in str(raw[1])
    assert integrations.read_secrets(integration=integ, box=runtime.box) == {"access_token": "pat-na1-TOPSECRET"}
    events = session.exec(select(AuditEvent)).all()
    assert all("TOPSECRET" not in str(e.details) for e in events)


def test_migrations_match_the_models(engine: Engine) -> None:
    """Alembic's autogenerate finds nothing to do: the migrations create exactly the models' schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []
