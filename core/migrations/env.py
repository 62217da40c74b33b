"""Alembic environment: the schema is ``SQLModel.metadata``; the engine or connection comes from ``core.db``."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import core.models  # noqa: F401  (registers the tables)

config = context.config
target_metadata = SQLModel.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = config.attributes.get("engine")
    if engine is None:
        from core.db import make_engine
        from core.settings import load_settings

        engine = make_engine(load_settings().effective_database_url)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
