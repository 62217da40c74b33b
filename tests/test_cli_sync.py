"""``integration add``, ``sync`` and ``presets`` end to end against the emulated HubSpot API, on both databases.

Includes a real ``switchboard sync`` process killed with SIGKILL half-way: the cache stays intact and the next
run succeeds.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.lookup import Lookups
from core.matching import CallInput
from core.models import AuditEvent, CachedRecord, Integration, Script, SyncOutcome, SyncRun
from core.sync import INTERRUPTED
from tests.crm import Fault, HubSpotEmulator, serve
from tests.test_cli import Cli

TOKEN = "pat-eu1-5e3c1b7a-secret-token"


@pytest.fixture
def cli(engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI in-process, with a tenant ``acme`` (NL, Amsterdam time)."""
    runner = Cli(engine.url.render_as_string(hide_password=False), tmp_path / "data", capsys, monkeypatch)
    code, _out, err = runner("tenant", "create", "acme", "--name", "Acme", "--country", "NL", "--timezone",
                             "Europe/Amsterdam")  # fmt: skip
    assert code == 0, err
    return runner


def contacts(count: int, *, area: str = "20") -> list[dict[str, object]]:
    """HubSpot contacts with a landline in ``area`` and a mobile number (every tenth one is 'n/a')."""
    return [
        {
            "hs_object_id": str(1000 + i),
            "firstname": "Anna",
            "lastname": f"Bakker {i}",
            "email": f"anna{i}@example.nl",
            "phone": f"0{area} {3000000 + i}",
            "mobilephone": "n/a" if i % 10 == 0 else f"06 {30000000 + i}",
        }
        for i in range(count)
    ]


def add_args(url: str, *extra: str) -> list[str]:
    return ["integration", "add", "--tenant", "acme", "--preset", "hubspot", "--set", f"access_token={TOKEN}",
            "--set", "portal_id=4242", "--set", f"api_base_url={url}", *extra]  # fmt: skip


def who_calls(engine: Engine, number: str) -> list[str]:
    lookups = Lookups(engine)
    try:
        body = lookups.by_tenant("acme", CallInput(caller_number=number)).body
    finally:
        lookups.close()
    return [match["record_id"] for match in body["matches"]]


def test_add_tests_stores_and_syncs_without_showing_the_secret(cli: Cli, engine: Engine) -> None:
    crm = HubSpotEmulator(
        token=TOKEN, contacts=contacts(250), companies=[{"name": "Bakkerij", "phone": "020 555 0000"}]
    )
    with serve(crm.app) as url:
        code, out, err = cli(*add_args(url), "--json")
    assert code == 0, err
    assert TOKEN not in out and TOKEN not in err
    result = json.loads(out)
    assert result["connection"]["sample"]["record_id"] == "contacts:1000"
    assert result["sync"]["outcome"] == "success" and result["sync"]["records"] == 251
    assert result["sync"]["unparsed"] == 25 and result["sync"]["unparsed_examples"][0] == "Anna Bakker 0: n/a"
    assert result["integration"]["numbers_cached"] == 251 + 225
    assert result["integration"]["settings"] == {"portal_id": "4242", "api_base_url": url}
    with Session(engine) as session:
        integration = session.get(Integration, result["id"])
        assert integration is not None and TOKEN not in integration.secrets and integration.secrets
        assert [n["field"] for n in integration.notification] == ["DisplayName", "company", "email"]
        (script,) = session.exec(select(Script).where(Script.integration_id == integration.id)).all()
        assert (script.name, script.url_template, script.auto_open) == ("Open in HubSpot", "$(PopUpUri)", True)
        events = session.exec(select(AuditEvent).where(col(AuditEvent.action).in_(["integration.create"]))).all()
        assert len(events) == 1 and TOKEN not in json.dumps(events[0].details)
    assert who_calls(engine, "06 30000007") == ["contacts:1007"]


def test_a_failed_connection_test_stores_nothing(cli: Cli, engine: Engine) -> None:
    crm = HubSpotEmulator(token="another-token", contacts=contacts(5))
    with serve(crm.app) as url:
        code, out, err = cli(*add_args(url))
    assert code == 2 and out == ""
    assert "HubSpot refused the access token (401)" in err and TOKEN not in err
    with Session(engine) as session:
        assert session.exec(select(Integration)).all() == []
        assert session.exec(select(Script)).all() == []


def test_bad_settings_name_the_field_before_the_crm_is_asked(cli: Cli) -> None:
    crm = HubSpotEmulator(token=TOKEN, contacts=contacts(5))
    with serve(crm.app) as url:
        code, _out, err = cli(*add_args(url, "--set", "portal_id=my portal"))
        assert code == 2 and "portal_id: Portal ID: digits only" in err
        code, _out, err = cli(*add_args(url, "--set", "colour=blue"))
        assert code == 2 and "HubSpot has no setting called 'colour'" in err
        code, _out, err = cli(*add_args(url, "--schedule", "every night"))
        assert code == 2 and "schedule" in err
        code, _out, err = cli(*add_args(url, "--set", "access_token=pat-na1-\u2019quoted\u2019"))
        assert code == 2 and "access_token: Access token: holds a character that cannot be sent to HubSpot" in err
        assert "quoted" not in err
    assert crm.requests == []


def test_no_sync_and_script_only_presets(cli: Cli, engine: Engine) -> None:
    crm = HubSpotEmulator(token=TOKEN, contacts=contacts(5))
    with serve(crm.app) as url:
        code, out, err = cli(*add_args(url, "--no-sync", "--schedule", "15 3 * * 1-5", "--name", "Sales CRM"))
    assert code == 0, err
    assert "connection OK" in out and "added integration 1 (Sales CRM, HubSpot) to acme" in out
    assert "first sync" not in out
    code, out, err = cli("integration", "add", "--tenant", "acme", "--preset", "web-search", "--json")
    assert code == 0, err
    added = json.loads(out)
    assert added["connection"] is None and added["sync"] is None
    with Session(engine) as session:
        assert session.exec(select(SyncRun)).all() == []
        assert session.get(Integration, 1).schedule == "15 3 * * 1-5"  # type: ignore[union-attr]
        assert session.exec(select(Script).where(Script.integration_id == added["id"])).one().when == "always"


def test_sync_prints_a_summary_and_guards_the_cache(cli: Cli, engine: Engine) -> None:
    crm = HubSpotEmulator(token=TOKEN, contacts=contacts(120))
    with serve(crm.app) as url:
        assert cli(*add_args(url))[0] == 0
        code, out, err = cli("sync", "--tenant", "acme")
        assert code == 0, err
        assert "integration 1 (HubSpot): success" in out and "120 records, 228 numbers" in out
        assert "12 not understood as numbers (e.g. Anna Bakker 0: n/a" in out
        crm.objects["contacts"] = []
        code, out, err = cli("sync", "--tenant", "acme", "--integration", "1", "--json")
        assert code == 2
        (run,) = json.loads(out)
        assert run["outcome"] == "suspicious" and "--accept-shrink" in run["error"]
        assert who_calls(engine, "020 3000005") == ["contacts:1005"]
        code, out, _err = cli("sync", "--tenant", "acme", "--accept-shrink")
        assert code == 0 and "success" in out
    assert who_calls(engine, "020 3000005") == []
    code, out, err = cli("integration", "guard", "1", "--percent", "0", "--tenant", "acme")
    assert code == 0 and "every sync replaces the cache" in out, err
    code, _out, err = cli("integration", "guard", "1", "--percent", "101")
    assert code == 2 and "sync_guard_percent" in err
    with Session(engine) as session:
        assert session.get(Integration, 1).sync_guard_percent == 0  # type: ignore[union-attr]
    code, _out, err = cli("sync", "--tenant", "nobody")
    assert code == 2 and "there is no tenant 'nobody'" in err


def test_presets_list_and_show() -> None:
    from core.cli import main

    def run(*args: str) -> str:
        import contextlib
        import io

        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            main(list(args))
        return buffer.getvalue()

    listed = json.loads(run("presets", "list", "--json"))
    assert {"hubspot", "insightly", "pipedrive", "web-search"} <= {p["key"] for p in listed}
    shown = json.loads(run("presets", "show", "hubspot", "--json"))
    token = next(s for s in shown["settings"] if s["name"] == "access_token")
    assert token["kind"] == "secret" and token["required"] and "Private apps" in token["help"]
    assert shown["fields"]["DisplayName"] == "Name" and shown["scripts"][0]["url"] == "$(PopUpUri)"
    assert [n["field"] for n in shown["notification"]] == ["DisplayName", "company", "email"]
    text = run("presets", "show", "pipedrive")
    assert "settings (--set NAME=VALUE):" in text and "default scripts:" in text


@pytest.mark.slow
def test_a_sync_killed_half_way_leaves_the_cache_intact(cli: Cli, engine: Engine, tmp_path: Path) -> None:
    crm = HubSpotEmulator(token=TOKEN, contacts=contacts(6_000))
    with serve(crm.app) as url:
        code, out, err = cli(*add_args(url, "--json"))
        assert code == 0, err
        first = json.loads(out)["sync"]
        assert first["records"] == 6_000
        crm.objects["contacts"] = [crm._record(p, 0) for p in contacts(6_000, area="30")]
        stall_at = crm.data_requests + 60  # past the first batch of 5,000 records
        crm.faults.on(stall_at, fault=Fault.hang(90))
        command = [str(Path(sys.executable).parent / "switchboard"), *cli.base, "sync", "--tenant", "acme"]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 90
            while not (crm.data_requests >= stall_at and _orphans(engine, first["id"])):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the sync never reached the stall"
                time.sleep(0.1)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]
        with Session(engine) as session:
            integration = session.get(Integration, 1)
            running = session.exec(select(SyncRun).where(SyncRun.outcome == SyncOutcome.RUNNING)).one()
        assert integration is not None and integration.active_generation == first["id"]
        assert who_calls(engine, "020 3000007") == ["contacts:1007"]
        assert who_calls(engine, "030 3000007") == []

        code, out, err = cli("sync", "--tenant", "acme", "--json")
        assert code == 0, err
        (again,) = json.loads(out)
        assert again["outcome"] == "success" and again["records"] == 6_000
    with Session(engine) as session:
        dead = session.get(SyncRun, running.id)
        generations = set(session.exec(select(CachedRecord.generation).distinct()).all())
    assert dead is not None and dead.outcome == SyncOutcome.FAILED and dead.error == INTERRUPTED
    assert generations == {again["id"]}
    assert who_calls(engine, "030 3000007") == ["contacts:1007"]


def _orphans(engine: Engine, active: int) -> bool:
    """Whether a generation other than ``active`` has written records."""
    with Session(engine) as session:
        return (
            session.exec(select(CachedRecord.id).where(CachedRecord.generation != active).limit(1)).first() is not None
        )
