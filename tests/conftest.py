"""Shared fixtures: a database on SQLite and on a real PostgreSQL server, a runtime, factories."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from core.db import init_db, make_engine
from core.runtime import Runtime
from core.security import SecretBox
from core.settings import Settings

PG_ADMIN_URL = os.environ.get("SWITCHBOARD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    try:
        engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any reason at all: report it
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    problem = _pg_available()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not answering at {PG_ADMIN_URL}: {problem}")
        pytest.skip(f"PostgreSQL is not answering ({problem}); .ci/run starts it")
    name = f"sb_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database: one per test on SQLite, one per session on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'switchboard.db'}"
    return str(request.getfixturevalue("pg_database"))


def _clean(engine: Engine) -> None:
    """Empty every table (PostgreSQL databases are shared by the tests of one session)."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
            connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(SQLModel.metadata.sorted_tables):
                connection.execute(table.delete())


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine on the parametrised backend, emptied after the test."""
    engine = make_engine(db_url)
    init_db(engine)
    try:
        yield engine
    finally:
        _clean(engine)
        engine.dispose()


@pytest.fixture
def runtime(engine: Engine, tmp_path: Path) -> Runtime:
    """A runtime over the test database, with a fresh secret key."""
    settings = Settings(data_dir=tmp_path / "data", database_url=str(engine.url.render_as_string(False)))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    from cryptography.fernet import Fernet

    return Runtime(settings=settings, engine=engine, box=SecretBox(Fernet.generate_key()))


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the test database (commit explicitly where the test needs to)."""
    with Session(engine, expire_on_commit=False) as session:
        yield session
