"""Typed, validated settings: environment variables ``SWITCHBOARD_*``, overridden by command-line flags.

The data directory holds the embedded database, the SSH host key and the key that encrypts CRM secrets at rest.
Defaults: ``$XDG_DATA_HOME/switchboard`` (usually ``~/.local/share/switchboard``).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigurationError

DEFAULT_HTTP_PORT = 8080
"""The HTTP shim's port unless ``switchboard serve --http-port`` says otherwise."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_data_dir() -> Path:
    """The per-user data directory: ``$XDG_DATA_HOME/switchboard`` or ``~/.local/share/switchboard``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "switchboard"


class Settings(BaseSettings):
    """Everything the server and the CLI need to find their data."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    secret_key: str | None = Field(default=None, repr=False)
    log_level: str = "INFO"
    public_url: str | None = None
    """The address at which admins' browsers reach the HTTP shim (``SWITCHBOARD_PUBLIC_URL``), for OAuth sign-in."""

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("sqlite:///", "sqlite+pysqlite:///", "postgresql")):
            raise ValueError(
                "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB (other databases are not supported)"
            )
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("use one of DEBUG, INFO, WARNING, ERROR")
        return level

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("give the shim's address as seen from a browser, e.g. https://switchboard.example.com")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("give the shim's address without '?', '#' or a user name")
        try:
            parts.port  # noqa: B018 (raises on a port that is not a number in 0-65535)
        except ValueError:
            raise ValueError("the port in the address is not a number in 1-65535") from None
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError(
                "use https:// (CRMs send the sign-in code to this address; plain http is allowed only for "
                "127.0.0.1 or localhost)"
            )
        return value.strip().rstrip("/")

    def public_base_url(self, *, http_port: int = DEFAULT_HTTP_PORT) -> str:
        """Where browsers reach the shim: ``public_url``, or ``http://127.0.0.1:<http port>`` when unset."""
        return self.public_url or f"http://127.0.0.1:{http_port}"

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to the embedded SQLite file in the data dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'switchboard.db'}"

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite file."""
        return self.effective_database_url.startswith("sqlite")


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment plus explicit overrides (``None`` overrides are ignored).

    Raises ConfigurationError naming the setting and what to do, instead of pydantic's report.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "settings"
        env = f"SWITCHBOARD_{name.upper()}"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigurationError(f"{message} (set {env} or the matching flag)", field=name) from None
