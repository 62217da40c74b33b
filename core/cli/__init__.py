"""The ``switchboard`` command: operator CLI over the same use-case functions the TUI calls.

Errors go to stderr as ``error: <field>: <message>`` with exit code 2; ``--json`` prints stable field names
and never a secret.
"""

from __future__ import annotations

import sys

import click

from core.cli.base import cli
from core.errors import SwitchboardError

# Each module adds its commands to ``cli`` when imported.
from core.cli import admin, integrations, lookup, serve, sync  # noqa: F401  isort: skip


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    try:
        cli.main(args=argv, prog_name="switchboard", standalone_mode=False)
    except SwitchboardError as exc:
        click.echo(f"error: {exc.title}: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted; nothing was changed", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
