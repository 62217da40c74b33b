"""``switchboard serve``: run the server parts that are switched on."""

from __future__ import annotations

import asyncio
import logging

import click

from core.cli.base import State, cli, pass_state
from core.errors import InvalidInput
from core.serve import ServeOptions, build_services, default_node_name, run_services


def _check_port(value: int, name: str) -> int:
    if not 0 <= value <= 65535:
        raise InvalidInput(f"{value} is not a TCP port; use 1-65535 (0 picks a free one)", field=name)
    return value


@cli.command("serve")
@click.option("--http-host", default="127.0.0.1", show_default=True, help="Address of the HTTP lookup shim.")
@click.option("--http-port", default=8080, show_default=True, type=int, help="Port of the HTTP lookup shim.")
@click.option("--ssh-host", default="127.0.0.1", show_default=True, help="Address of the SSH server.")
@click.option("--ssh-port", default=2222, show_default=True, type=int, help="Port of the SSH server.")
@click.option("--no-http", is_flag=True, help="Do not serve lookups on this node.")
@click.option("--no-ssh", is_flag=True, help="Do not serve the admin app over SSH on this node.")
@click.option("--no-scheduler", is_flag=True, help="Do not run scheduled syncs on this node.")
@click.option("--node", default=None, help="This node's name in sync leases [default: host:pid].")
@click.option(
    "--ssh-idle-timeout",
    default=1800.0,
    show_default=True,
    type=float,
    help="Seconds without admin input before an SSH session is closed.",
)
@pass_state
def serve_cmd(
    state: State,
    http_host: str,
    http_port: int,
    ssh_host: str,
    ssh_port: int,
    no_http: bool,
    no_ssh: bool,
    no_scheduler: bool,
    node: str | None,
    ssh_idle_timeout: float,
) -> None:
    """Run the HTTP lookup shim, the sync scheduler and the SSH admin server (creates/upgrades the schema)."""
    options = ServeOptions(
        http_host=http_host,
        http_port=_check_port(http_port, "http_port"),
        ssh_host=ssh_host,
        ssh_port=_check_port(ssh_port, "ssh_port"),
        http=not no_http,
        ssh=not no_ssh,
        scheduler=not no_scheduler,
        node=node or default_node_name(),
        ssh_idle_timeout=ssh_idle_timeout,
    )
    logging.basicConfig(
        level=state.runtime.settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    services = build_services(state.runtime, options, warn=lambda line: click.echo(f"warning: {line}", err=True))
    asyncio.run(run_services(services, announce=click.echo))
