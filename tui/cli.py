"""``switchboard tui``: the admin app in this terminal, or (``--identity-fd``) as the SSH server's child.

This module is imported by every ``switchboard`` invocation (the CLI finds it by entry point), so it imports
nothing heavy at module level: Textual and the screens load only when the command runs.
"""

from __future__ import annotations

import sys

import click

from core.cli.base import State


def _state(ctx: click.Context) -> State:
    """The root group's state (``--data-dir``, ``--database-url``), or the defaults when run on its own."""
    state = ctx.find_object(State)
    return state if state is not None else State(None, None)


@click.command("tui")
@click.option(
    "--identity-fd",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Used by the SSH server: read the signed-in user from this file descriptor instead of signing in.",
)
@click.pass_context
def tui_command(ctx: click.Context, identity_fd: int | None) -> None:
    """Open the admin app in this terminal; sign in with your user name and password."""
    state = _state(ctx)
    if identity_fd is not None:
        from tui.child import run_child

        _finish(run_child(state, identity_fd))
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise click.ClickException("switchboard tui needs a terminal: run it in a terminal window (or over SSH)")
    from tui.app import make_app

    app = make_app(runtime=state.runtime)
    app.run()
    _finish(app.return_code or 0)


def _finish(code: int) -> None:
    """End with ``code`` (``sys.exit``: the root command ignores click's own exit codes)."""
    if code:
        sys.exit(code)
