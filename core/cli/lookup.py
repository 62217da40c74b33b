"""``switchboard lookup``: ask what the phone would be told about a caller, without the HTTP shim."""

from __future__ import annotations

from typing import Any

import click

from core.cli.base import State, cli, emit_json, emit_table, json_option, pass_state, tenant_option
from core.lookup import Lookups
from core.matching import CallInput


@cli.command("lookup")
@tenant_option()
@click.argument("number")
@click.option("--ddi", default=None, metavar="NUMBER", help="The number the call came in on (for DDI filters).")
@json_option
@pass_state
def lookup_cmd(state: State, tenant_slug: str, number: str, ddi: str | None, as_json: bool) -> None:
    """Look NUMBER up in the tenant's cache: the same answer the HTTP shim gives the phone system."""
    lookups = Lookups(state.runtime.engine)
    try:
        result = lookups.by_tenant(tenant_slug, CallInput(caller_number=number, ddi_number=ddi))
    finally:
        lookups.close()
    if as_json:
        emit_json(result.body)
    else:
        _print(result.body)


def _print(body: dict[str, Any]) -> None:
    number = body["number"]
    if number["internal"]:
        click.echo(f"{number['input']}: internal number {number['national']} (never matched)")
    else:
        click.echo(f"{number['input']}: {number['e164']} (national {number['national']})")
    if not body["matches"]:
        click.echo("no match")
    for match in body["matches"]:
        integration = match["integration"]
        click.echo(
            f"\n{match['match']} match in {integration['name']} ({integration['preset']}), record {match['record_id']}"
        )
        emit_table([(line["label"], line["value"]) for line in match["notification"]], ["field", "value"])
        _print_scripts(match["scripts"])
    if body["truncated"]:
        click.echo("(more records share this number than are shown)")
    if body["scripts"]:
        click.echo("")
        _print_scripts(body["scripts"])


def _print_scripts(scripts: list[dict[str, Any]]) -> None:
    for script in scripts:
        flag = " (opens by itself)" if script["auto_open"] else ""
        click.echo(f"  script {script['name']}{flag}: {script['url']}")
