"""What every front end needs at hand: the settings, the database engine and the secret box."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from core.db import init_db, make_engine
from core.security import SecretBox, load_secret_key
from core.settings import Settings


@dataclass(frozen=True)
class Runtime:
    """The process-wide handles; build one with ``open_runtime``."""

    settings: Settings
    engine: Engine
    box: SecretBox

    def close(self) -> None:
        """Close the database connections."""
        self.engine.dispose()


def open_runtime(settings: Settings, *, migrate: bool = True) -> Runtime:
    """Open the database (creating or upgrading its schema unless told not to) and the secret key."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    if migrate:
        init_db(engine)
    box = SecretBox(load_secret_key(settings.data_dir, settings.secret_key))
    return Runtime(settings=settings, engine=engine, box=box)
