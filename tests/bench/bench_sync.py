"""Benchmark of the sync: 100,000 HubSpot contacts with two numbers each, 100 a page, into the cache.

Three processes, so each figure is the measured process' own: the emulated HubSpot API (a separate process,
serving the same data set throughout), a *download* process that only fetches and parses the pages through
the HubSpot preset (the baseline), and a *sync* process that runs the full sync (normalising every number
with the tenant's country, writing the generation, switching to it). Each runs twice per database: the
first sync fills an empty cache, the second replaces a full one (the nightly case: the old generation is
deleted in the same transaction). Peak memory is the sync process' own maximum resident set
(``getrusage``); CPU seconds are given for the sync process and, after the "+", for the helper process that
parses numbers for big runs (its memory is not shown: a spawned child's maximum resident set as the kernel
reports it includes the parent's pages at fork time). The download CPU is the client side only; the
emulator's own CPU is in neither figure.

Limits from the issue: a sync takes at most 20 s, at most 3x the download in the same run, and its process
peaks at 250 MB at most.

Run: ``make bench`` or ``python -m tests.bench sync`` (PostgreSQL from ``SWITCHBOARD_TEST_PG_URL`` if it
answers; the benchmark creates and drops its own database).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

CONTACTS = int(os.environ.get("BENCH_SYNC_CONTACTS", "100000"))  # smaller for a quick look
PAGE = 100
TOKEN = "pat-bench-0000"
PG_ADMIN_URL = os.environ.get("SWITCHBOARD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LIMIT_SECONDS = 20.0
LIMIT_RATIO = 3.0
LIMIT_MB = 250.0


# --- the processes ---------------------------------------------------------------------------------------


def serve_crm() -> None:
    """Child: serve 100,000 contacts on 127.0.0.1 until stdin closes; prints the base URL first."""
    from tests.crm import HubSpotEmulator, serve

    contacts = [
        {
            "hs_object_id": str(10_000_000 + i),
            "firstname": "Anna",
            "lastname": f"de Vries {i}",
            "email": f"anna.{i}@example.nl",
            "company": "Bakkerij de Vries B.V.",
            "jobtitle": "Inkoop",
            "phone": f"020 {1_000_000 + i * 7 % 8_999_999:07d}",
            "mobilephone": f"+31 6 {10_000_000 + i:08d}",
        }
        for i in range(CONTACTS)
    ]
    crm = HubSpotEmulator(token=TOKEN, contacts=contacts)
    with serve(crm.app) as url:
        print(url, flush=True)
        sys.stdin.read()


def _peaks() -> dict[str, float]:
    """Peak resident memory (MB) of this process, CPU seconds so far of it and of its (reaped) children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    helper = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "peak_mb": own.ru_maxrss / 1024,
        "cpu": own.ru_utime + own.ru_stime,
        "helper_cpu": helper.ru_utime + helper.ru_stime,
    }


def _connector(url: str) -> Any:
    from core.connector import build_connector, get_preset

    values = {"access_token": TOKEN, "portal_id": "1", "api_base_url": url}
    return build_connector(get_preset("hubspot"), values)


def download(url: str) -> None:
    """Child: fetch and parse every page through the preset, nothing else; prints JSON figures."""

    async def run() -> int:
        connector = _connector(url)
        count = 0
        try:
            async for page in connector.fetch():
                count += len(page)
        finally:
            await connector.aclose()
        return count

    started = time.perf_counter()
    records = asyncio.run(run())
    print(json.dumps({"seconds": time.perf_counter() - started, "records": records, **_peaks()}))


def sync(url: str, database_url: str) -> None:
    """Child: prepare the database (not timed), then sync twice; prints JSON figures for each run."""
    from cryptography.fernet import Fernet
    from sqlmodel import Session

    from core.db import init_db, make_engine
    from core.security import SecretBox
    from core.sync import sync_integration
    from tests.factories import make_integration, make_tenant

    engine = make_engine(database_url)
    init_db(engine)
    with Session(engine, expire_on_commit=False) as session:
        tenant = make_tenant(session, f"bench-{uuid.uuid4().hex[:8]}", country="NL", timezone="Europe/Amsterdam")
        integration = make_integration(session, tenant, SecretBox(Fernet.generate_key()))
        session.commit()
    figures = [_peaks()]  # after the set-up: what the runs use is counted from here
    for _ in range(2):
        started = time.perf_counter()
        run = asyncio.run(
            sync_integration(engine=engine, integration_id=integration.id or 0, connector=lambda: _connector(url))
        )
        seconds = time.perf_counter() - started
        figures.append({"seconds": seconds, "outcome": run.outcome.value, "records": run.records,
                        "numbers": run.numbers, "error": run.error, **_peaks()})  # fmt: skip
    engine.dispose()
    print(json.dumps(figures))


# --- the driver ------------------------------------------------------------------------------------------


def _child(*args: str) -> Any:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.bench_sync", *args], cwd=root, env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"bench child {args[0]} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _postgres() -> str | None:
    """A fresh PostgreSQL database for the benchmark, or None if the server does not answer."""
    import sqlalchemy as sa

    try:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text('DROP DATABASE IF EXISTS "sb_bench_sync"'))
            connection.execute(sa.text('CREATE DATABASE "sb_bench_sync"'))
        admin.dispose()
    except Exception as exc:  # any reason: say so and go on with SQLite
        print(f"(PostgreSQL skipped: {str(exc).splitlines()[0]})")
        return None
    url = sa.engine.make_url(PG_ADMIN_URL).set(database="sb_bench_sync")
    return url.render_as_string(hide_password=False)


def _drop_postgres() -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text('DROP DATABASE IF EXISTS "sb_bench_sync" WITH (FORCE)'))
    admin.dispose()


def _verdict(sync_run: dict[str, Any], baseline: float) -> str:
    problems = []
    if sync_run["outcome"] != "success" or sync_run["records"] != CONTACTS or sync_run["numbers"] != 2 * CONTACTS:
        problems.append(f"{sync_run['outcome']}: {sync_run['records']} records, {sync_run['error']}")
    if sync_run["seconds"] > LIMIT_SECONDS:
        problems.append(f"> {LIMIT_SECONDS:g} s")
    if sync_run["seconds"] > LIMIT_RATIO * baseline:
        problems.append(f"> {LIMIT_RATIO:g}x download")
    if sync_run["peak_mb"] > LIMIT_MB:
        problems.append(f"> {LIMIT_MB:g} MB")
    return "ok" if not problems else "OVER: " + ", ".join(problems)


def main() -> None:
    """Serve the data set, measure download and sync on SQLite (and PostgreSQL), print the table."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.bench_sync", "serve"], cwd=root, env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    rows: list[tuple[str, ...]] = []
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory(prefix="sb-bench-sync-") as tmp:
            databases = [("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}")]
            pg = _postgres()
            if pg:
                databases.append(("PostgreSQL", pg))
            for name, database_url in databases:
                baseline = _child("download", url)
                setup, *runs = _child("sync", url, database_url)
                cpu, helper_cpu = setup["cpu"], setup["helper_cpu"]
                for label, run in zip(("first sync", "second sync"), runs, strict=True):
                    run_cpu, run_helper = run["cpu"] - cpu, run["helper_cpu"] - helper_cpu
                    cpu, helper_cpu = run["cpu"], run["helper_cpu"]
                    ratio = run["seconds"] / baseline["seconds"]
                    rows.append((
                        name, label, f"{baseline['seconds']:.1f}", f"{run['seconds']:.1f}", f"{ratio:.2f}x",
                        f"{baseline['cpu']:.1f}", f"{run_cpu:.1f} + {run_helper:.1f}", f"{run['peak_mb']:.0f}",
                        _verdict(run, baseline["seconds"]),
                    ))  # fmt: skip
            if pg:
                _drop_postgres()
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)
    _print(rows)


def _print(rows: list[tuple[str, ...]]) -> None:
    headers = ("database", "run", "download s", "sync s", "sync/download", "download CPU s",
               "sync CPU s (+ helper)", "sync peak MB", "limits (20 s, 3x, 250 MB)")  # fmt: skip
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(f"sync of {CONTACTS:,} HubSpot contacts x 2 numbers, {PAGE} a page, emulated API in its own process; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "main"
    if command == "serve":
        serve_crm()
    elif command == "download":
        download(sys.argv[2])
    elif command == "sync":
        sync(sys.argv[2], sys.argv[3])
    else:
        main()
