"""Shared pieces of the CLI: the root group, the runtime on the context, output as tables or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel
from sqlmodel import Session

from core.db import session_scope
from core.models import Tenant
from core.runtime import Runtime, open_runtime
from core.services.audit import OPERATOR, Actor
from core.services.tenants import get_tenant
from core.settings import load_settings

F = TypeVar("F", bound=Callable[..., Any])


class State:
    """Lazily opened runtime, so ``--help`` never touches the database."""

    def __init__(self, data_dir: Path | None, database_url: str | None) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self._runtime: Runtime | None = None

    @property
    def runtime(self) -> Runtime:
        """The runtime, opened (and the schema migrated) on first use."""
        if self._runtime is None:
            settings = load_settings(data_dir=self.data_dir, database_url=self.database_url)
            self._runtime = open_runtime(settings)
        return self._runtime

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the command succeeds, rolled back on any error."""
        with session_scope(self.runtime.engine) as session:
            yield session

    def close(self) -> None:
        """Release the database connections when the command ends."""
        if self._runtime is not None:
            self._runtime.close()

    actor: Actor = OPERATOR


pass_state = click.make_pass_decorator(State)

PLUGIN_GROUP = "switchboard.commands"


class PluginGroup(click.Group):
    """A group that also offers the front ends' commands (``tui`` ...), found by entry point and imported only
    when used, so that importing core never imports a front end."""

    def _plugins(self) -> dict[str, EntryPoint]:
        return {e.name: e for e in entry_points(group=PLUGIN_GROUP) if e.name not in self.commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._plugins()])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        entry = None if command is not None else self._plugins().get(cmd_name)
        if entry is None:
            return command
        try:
            loaded: click.Command = entry.load()
        except (ImportError, AttributeError) as exc:  # a missing front end must not take the operator CLI down
            return _unavailable(cmd_name, str(exc))
        return loaded


def _unavailable(name: str, reason: str) -> click.Command:
    def fail() -> None:
        raise click.ClickException(f"the '{name}' command is not available in this build ({reason})")

    return click.Command(name, callback=fail, help=f"(not available: {reason})")


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the database, host key and secret key live [env: SWITCHBOARD_DATA_DIR].",
)
@click.option(
    "--database-url",
    default=None,
    metavar="URL",
    help="sqlite:///PATH or postgresql+psycopg://USER@HOST/DB [env: SWITCHBOARD_DATABASE_URL].",
)
@click.version_option(package_name="switchboard")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, database_url: str | None) -> None:
    """switchboard: connect your CRM to your phone system."""
    ctx.obj = State(data_dir, database_url)
    ctx.call_on_close(ctx.obj.close)


def json_option(func: F) -> F:
    """Add ``--json``: machine-readable output with stable field names and no secrets."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(func)


def tenant_option(required: bool = True) -> Callable[[F], F]:
    """Add ``--tenant SLUG``."""
    return click.option(
        "--tenant", "tenant_slug", required=required, metavar="SLUG", help="The tenant (organisation) id."
    )


def load_tenant(session: Session, slug: str) -> Tenant:
    """The tenant named on the command line."""
    return get_tenant(session=session, slug=slug)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def emit_json(data: Any) -> None:
    """Print models or plain data as indented JSON."""
    data = [_plain(item) for item in data] if isinstance(data, list) else _plain(data)
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def emit_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], *, empty: str = "(none)") -> None:
    """Print an aligned plain-text table."""
    if not rows:
        click.echo(empty)
        return
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def emit_fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """Print label/value pairs, one per line."""
    width = max(len(label) for label, _ in pairs)
    for label, value in pairs:
        click.echo(f"{label.ljust(width)}  {_cell(value)}")
