"""Operator commands to connect CRMs and sync them: ``integration add``, ``sync``, ``presets list|show``."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

import click

from core.cli.base import State, cli, emit_fields, emit_json, emit_table, json_option, load_tenant, pass_state
from core.cli.integrations import browser_sign_in, integration_group
from core.errors import InvalidInput, SwitchboardError
from core.models import SyncOutcome, SyncRunPublic
from core.presets import Preset, get_preset, load_presets
from core.services import integrations as svc
from core.services.setup import ConnectionCheck, connect_integration
from core.services.sync import set_sync_guard, sync_now
from core.sync import SyncProgress

# --- integration add -----------------------------------------------------------------------------------------


def _parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--set takes KEY=VALUE, not {pair.split('=')[0]!r}…", field="set")
        values[key.strip()] = value
    return values


def _ask_missing_secrets(preset: Preset, values: dict[str, str]) -> None:
    """At a terminal, ask (hidden) for required secret settings not given, so they stay out of shell history."""
    if not sys.stdin.isatty():
        return
    for setting in preset.settings:
        if setting.secret and setting.required and not values.get(setting.name):
            values[setting.name] = str(click.prompt(setting.label, hide_input=True))


class _ProgressLine:
    """Prints sync progress to stderr at most a few times a second, only at a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, progress: SyncProgress) -> None:
        now = time.monotonic()
        if self.enabled and now - self.last > 0.25:
            self.last = now
            click.echo(
                f"\r  {progress.object_type}: {progress.records:,} records, {progress.pages:,} pages ",
                err=True,
                nl=False,
            )

    def done(self) -> None:
        if self.enabled and self.last:
            click.echo("", err=True)


@integration_group.command("add")
@click.option("--tenant", "tenant_slug", required=True, metavar="SLUG", help="The tenant (organisation) id.")
@click.option("--preset", "preset_key", required=True, metavar="KEY", help="The CRM, e.g. hubspot (`presets list`).")
@click.option("--name", default=None, help="A name for the integration (default: the CRM's name).")
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE", help="A setting of the preset (repeatable).")
@click.option("--secret-stdin", default=None, metavar="KEY", help="Read the value of setting KEY from standard input.")
@click.option("--schedule", default=None, metavar="CRON", help="When to sync, e.g. '30 2 * * *' (default: nightly).")
@click.option("--no-sync", is_flag=True, help="Test the connection but do not run the first sync now.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="For CRMs you sign in to in a browser: how long to wait for the sign-in (default: until it expires).",
)
@json_option
@pass_state
def integration_add(
    state: State,
    tenant_slug: str,
    preset_key: str,
    name: str | None,
    pairs: tuple[str, ...],
    secret_stdin: str | None,
    schedule: str | None,
    no_sync: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Connect a CRM: check the settings, test the connection, store it, run the first sync.

    Nothing is stored if the settings are wrong or the connection test fails. Secret settings are stored
    encrypted and never printed; at a terminal, required secrets not given with --set are asked for.
    For CRMs you sign in to in a browser (OAuth), it prints the sign-in address and waits until you have
    signed in; `switchboard serve` must be reachable at the redirect address it names.
    """
    preset = get_preset(preset_key)
    values = _parse_sets(pairs)
    if secret_stdin:
        values[secret_stdin] = sys.stdin.readline().rstrip("\r\n")
    _ask_missing_secrets(preset, values)
    with state.session() as session:
        load_tenant(session, tenant_slug)  # a wrong tenant fails before the CRM is contacted
    if schedule is not None:
        svc.check_schedule(schedule)  # before anyone signs in
    line = _ProgressLine(not as_json)
    try:
        with browser_sign_in(
            state, tenant_slug=tenant_slug, preset=preset, values=values, timeout=timeout
        ) as oauth_state:
            connected = asyncio.run(
                connect_integration(
                    runtime=state.runtime,
                    actor=state.actor,
                    tenant_slug=tenant_slug,
                    preset_key=preset.key,
                    values=values,
                    name=name,
                    schedule=schedule,
                    first_sync=not no_sync,
                    progress=line,
                    oauth_state=oauth_state,
                )
            )
    finally:
        line.done()
    public = connected.integration
    if as_json:
        emit_json(
            {
                "id": public.id,
                "integration": public.model_dump(mode="json"),
                "connection": _test_json(connected.test),
                "sync": connected.run.model_dump(mode="json") if connected.run else None,
            }
        )
    else:
        if connected.test is not None:
            click.echo(_test_text(preset, connected.test))
        what = public.name if public.name == preset.name else f"{public.name}, {preset.name}"
        click.echo(
            f"added integration {public.id} ({what}) to {public.tenant}, syncing on '{public.schedule}' (tenant time)"
        )
        if connected.run is not None:
            click.echo(_run_text(connected.run))
    if connected.run is not None and connected.run.outcome is not SyncOutcome.SUCCESS:
        sys.exit(2)


def _test_json(test: ConnectionCheck | None) -> dict[str, Any] | None:
    if test is None:
        return None
    sample = test.sample
    return {
        "count": test.count,
        "object_types": test.object_types,
        "sample": None if sample is None else {"record_id": sample.record_id, "fields": sample.fields},
    }


def _test_text(preset: Preset, test: ConnectionCheck) -> str:
    count = "answered" if test.count is None else f"answered: {test.count:,} records"
    sample = ""
    if test.sample is not None:
        sample = f"; e.g. {test.sample.fields.get('DisplayName') or test.sample.record_id!r}"
    return f"connection OK: {preset.name} {count}{sample}"


@integration_group.command("guard")
@click.argument("integration_id", type=int)
@click.option("--percent", type=int, required=True, help="0-100; 0 turns the guard off. The default is 50.")
@click.option("--tenant", "tenant_slug", default=None, metavar="SLUG", help="The tenant (organisation) id.")
@pass_state
def integration_guard(state: State, integration_id: int, percent: int, tenant_slug: str | None) -> None:
    """Set the sync guard: a sync finding fewer records than PERCENT % of the cached ones keeps the cache."""
    with state.session() as session:
        tenant = load_tenant(session, tenant_slug) if tenant_slug else None
        integration = svc.get_integration(session=session, tenant=tenant, integration_id=integration_id)
        set_sync_guard(session=session, actor=state.actor, integration=integration, percent=percent)
        name = integration.name
    if percent:
        click.echo(f"integration {integration_id} ({name}): a sync finding under {percent}% of the cached records "
                   "is held back as suspicious and the cache kept")  # fmt: skip
    else:
        click.echo(f"integration {integration_id} ({name}): every sync replaces the cache, however few records")


# --- sync --------------------------------------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _run_text(run: SyncRunPublic, name: str | None = None) -> str:
    who = f"integration {run.integration_id}" + (f" ({name})" if name else "")
    took = ""
    if run.finished_at is not None:
        took = f" in {(run.finished_at - run.started_at).total_seconds():.1f} s"
    counts = f"{_plural(run.records, 'record')}, {_plural(run.numbers, 'number')}"
    extra = []
    if run.unparsed:
        extra.append(f"{run.unparsed:,} not understood as numbers (e.g. {'; '.join(run.unparsed_examples[:3])})")
    if run.shared_numbers:
        extra.append(f"{_plural(run.shared_numbers, 'number')} shared by several records")
    lines = [f"{who}: {run.outcome.value}{took} — {counts}"]
    lines += [f"  {item}" for item in extra]
    if run.error:
        lines.append(f"  {run.error}")
    if run.outcome is not SyncOutcome.SUCCESS:
        lines.append("  the previous cache is still used for caller recognition")
    return "\n".join(lines)


@cli.command("sync")
@click.option("--tenant", "tenant_slug", required=True, metavar="SLUG", help="The tenant (organisation) id.")
@click.option("--integration", "integration_id", type=int, default=None, help="Only this integration.")
@click.option("--accept-shrink", is_flag=True, help="Replace the cache even if the CRM returns far fewer records.")
@json_option
@pass_state
def sync_cmd(state: State, tenant_slug: str, integration_id: int | None, accept_shrink: bool, as_json: bool) -> None:
    """Sync the tenant's integrations now, in the foreground, and print what each sync found.

    Exits with 2 if any sync failed or was held back as suspicious (its previous cache is kept).
    """
    with state.session() as session:
        tenant = load_tenant(session, tenant_slug)
        if integration_id is not None:
            chosen = [svc.get_integration(session=session, tenant=tenant, integration_id=integration_id)]
        else:
            chosen = [i for i in svc.list_integrations(session=session, tenant=tenant) if i.enabled]
        targets = [(i.id or 0, i.name) for i in chosen if _has_api(i.preset)]
    if not targets:
        raise InvalidInput(
            f"the tenant {tenant_slug} has no enabled integration with a CRM to sync", field="integration"
        )
    runs: list[tuple[str, SyncRunPublic | None, SwitchboardError | None]] = []
    for target_id, name in targets:
        runs.append((name, *_sync_one(state, target_id, accept_shrink, progress=not as_json)))
    if as_json:
        pairs = zip(targets, runs, strict=True)
        emit_json([_run_json(target_id, name, run, error) for (target_id, _), (name, run, error) in pairs])
    else:
        for (target_id, _), (name, run, error) in zip(targets, runs, strict=True):
            click.echo(_run_text(run, name) if run else f"integration {target_id} ({name}): not run — {error}")
    if any(run is None or run.outcome is not SyncOutcome.SUCCESS for _, run, _ in runs):
        sys.exit(2)


def _has_api(preset_key: str) -> bool:
    try:
        return not get_preset(preset_key).is_script_only
    except SwitchboardError:
        return False


def _sync_one(
    state: State, integration_id: int, accept_shrink: bool, *, progress: bool
) -> tuple[SyncRunPublic | None, SwitchboardError | None]:
    line = _ProgressLine(progress)
    try:
        run = asyncio.run(
            sync_now(runtime=state.runtime, integration_id=integration_id, accept_shrink=accept_shrink, progress=line)
        )
    except SwitchboardError as exc:  # busy, or it vanished meanwhile: report it with the others
        return None, exc
    finally:
        line.done()
    return run, None


def _run_json(integration_id: int, name: str, run: SyncRunPublic | None, error: SwitchboardError | None) -> Any:
    if run is not None:
        return {"name": name, **run.model_dump(mode="json")}
    message = error.message if error else ""
    return {"integration_id": integration_id, "name": name, "outcome": "not_run", "error": message}


# --- presets ---------------------------------------------------------------------------------------------------


@cli.group("presets")
def presets_group() -> None:
    """The CRMs switchboard can connect to."""


@presets_group.command("list")
@json_option
def presets_list(as_json: bool) -> None:
    """List the presets (CRMs and script-only setups)."""
    presets = sorted(load_presets().values(), key=lambda p: (p.category, p.name.casefold()))
    if as_json:
        emit_json([_preset_summary(p) for p in presets])
        return
    emit_table(
        [(p.key, p.name, p.category, p.kind, p.description) for p in presets],
        ["key", "name", "category", "kind", "description"],
    )


def _preset_summary(preset: Preset) -> dict[str, Any]:
    return {
        "key": preset.key,
        "name": preset.name,
        "category": preset.category,
        "kind": preset.kind,
        "description": preset.description,
    }


def _preset_detail(preset: Preset) -> dict[str, Any]:
    return {
        **_preset_summary(preset),
        "settings": [
            {
                "name": s.name,
                "label": s.label,
                "kind": s.kind,
                "required": s.required,
                "default": s.default,
                "choices": list(s.choices),
                "help": s.help,
            }
            for s in preset.settings
        ],
        "object_types": preset.object_types,
        "fields": preset.fields,
        "notification": [{"field": n.field, "label": n.label} for n in preset.default_notification],
        "scripts": [
            {"name": s.name, "url": s.url, "when": s.when, "auto_open": s.auto_open} for s in preset.default_scripts
        ],
    }


def _setting_flags(setting: dict[str, Any]) -> list[str]:
    flags = ["required"] if setting["required"] else []
    if setting["kind"] == "secret":
        flags.append("secret")
    if setting["default"]:
        flags.append(f"default {setting['default']}")
    return flags


@presets_group.command("show")
@click.argument("key")
@json_option
def presets_show(key: str, as_json: bool) -> None:
    """Show what a preset asks for (settings with help), the fields it gives, its default notification and scripts."""
    detail = _preset_detail(get_preset(key))
    if as_json:
        emit_json(detail)
        return
    objects = ", ".join(detail["object_types"]) or "-"
    emit_fields([("key", key), ("name", detail["name"]), ("kind", detail["kind"]), ("objects", objects)])
    click.echo(detail["description"])
    click.echo("\nsettings (--set NAME=VALUE):")
    for s in detail["settings"]:
        flags = ", ".join(_setting_flags(s))
        click.echo(f"  {s['name']} — {s['label']}" + (f" ({flags})" if flags else ""))
        if s["help"]:
            click.echo(f"      {s['help']}")
    click.echo("\nfields:")
    emit_table([(name, label) for name, label in detail["fields"].items()], ["field", "label"])
    click.echo("\ndefault notification:")
    emit_table([(n["label"], n["field"]) for n in detail["notification"]], ["label", "field"])
    click.echo("\ndefault scripts:")
    emit_table(
        [(s["name"], s["when"], s["auto_open"], s["url"]) for s in detail["scripts"]],
        ["name", "when", "opens by itself", "url"],
    )
