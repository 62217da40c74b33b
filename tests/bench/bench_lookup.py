"""Lookup shim benchmark: throughput, latency, start-up time and memory with a big cache.

Setup: a SQLite file with 100 tenants, one holding 1,000,000 cached numbers (700,000 records, some with a second
number) and 99 holding 1,000 each, built with the use-case functions for configuration and bulk ``executemany``
for the cache. The server is ``switchboard serve`` with only the HTTP shim, in its own process; the load comes
from a raw asyncio HTTP/1.1 client (keep-alive, 32 connections) in another process, so the client costs little
and measures the server. Its ceiling is measured against a trivial asyncio responder.

The lookups mix hits (70% in the big tenant, 10% in small ones) and misses (which also try a partial match) over
160,000 distinct numbers, written as E.164 as phone systems send them. A hit is found in the cache by its E.164
before anything is parsed; the 32,000 distinct misses are more than ``core.numbers`` keeps parsed, so every miss
parses its number, as a new caller's would: the targets are judged on this mix. A "returning callers" row
repeats 4,000 of them (misses kept parsed) to show what parsing costs. Each row is preceded by a warm-up;
/healthz and the lookups alternate over two rounds. Apart from those returning callers, no lookup row asks again
for a number of the big tenant asked before in the run (each connection walks its own part of the list, and each
row starts further on).

Figures (the issue's targets): lookup throughput >= 60% of the same server's ``/healthz`` throughput, p99 of
lookups under 32 concurrent clients <= 20 ms, zero errors, ready within 3 s of start, RSS <= 500 MB. The
server reads its cache once before it answers (``Shim.warm_up``): "ready" includes that. RSS includes the
cache file's pages, which the lookups read through a memory map; the line below it says how much. The table
also gives the server's CPU time per request (from /proc): on a machine shared with other work, throughput and
latency move with the neighbours' load, CPU time per request much less so.

Run: ``make bench`` or ``python -m tests.bench lookup``. ``python -m tests.bench.bench_lookup --quick`` builds a
smaller cache.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

T = TypeVar("T")

BIG_TENANT_NUMBERS = 1_000_000
SMALL_TENANTS = 99
SMALL_TENANT_NUMBERS = 1_000
CONNECTIONS = 32
SECONDS = 5.0
WARMUP_SECONDS = 1.0
HIT_SAMPLE = 160_000
DISTINCT_LOOKUPS = 160_000  # 5,000 per connection: room for two rounds of new callers, warm-ups included
WARMUP_SKIP = 1_000  # further than a warm-up gets per connection (1 s at 10,000 requests/s is 320)
RETURNING_CALLERS = 4_000  # few enough that core.numbers keeps them parsed: callers who called before
TARGET_RATIO = 0.60
TARGET_P99_MS = 20.0
TARGET_READY_S = 3.0
TARGET_RSS_MB = 500.0


@dataclass
class Figures:
    """One load run: requests per second, latency percentiles and failures."""

    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_us: float | None = None

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


# --- the database -------------------------------------------------------------------------------------------


def _fields(index: int) -> str:
    return json.dumps(
        {
            "DisplayName": f"Contact {index}",
            "Identifier": str(index),
            "PopUpUri": f"https://crm.example.com/contacts/{index}",
            "Company": f"Company {index % 5000}",
        }
    )


def build_database(data_dir: Path, big_numbers: int) -> dict[str, object]:
    """Create the tenants, integrations, tokens and scripts, then bulk-load the cache; returns what the load needs."""
    from sqlmodel import Session

    from core.runtime import open_runtime
    from core.services import integrations, scripts, tenants, tokens
    from core.services.audit import OPERATOR
    from core.settings import Settings

    runtime = open_runtime(Settings(data_dir=data_dir))
    plan: list[tuple[str, int, int, str]] = []  # slug, tenant id, integration id, token
    with Session(runtime.engine, expire_on_commit=False) as session:
        for index in range(SMALL_TENANTS + 1):
            tenant = tenants.create_tenant(
                session=session, actor=OPERATOR, slug=f"t{index:03d}", name=f"Tenant {index}", country="NL",
                timezone="Europe/Amsterdam",
            )  # fmt: skip
            integration = integrations.create_integration(
                session=session, actor=OPERATOR, tenant=tenant, box=runtime.box, preset="hubspot", name="CRM",
                settings={}, secrets={"access_token": "x"},
                notification=[{"field": "DisplayName", "label": "Name"}, {"field": "Company", "label": "Company"}],
            )  # fmt: skip
            for draft in (
                scripts.ScriptDraft("Open in CRM", "$(PopUpUri)", integration_id=integration.id, auto_open=True),
                scripts.ScriptDraft(
                    "Mail callback",
                    "mailto:?subject=Callback&body=Call%20$(DisplayName)%20on%20#(Caller number)",
                    integration_id=integration.id,
                ),
                scripts.ScriptDraft("Search", "https://www.google.nl/search?q=#(Caller number)", when="nomatch"),
            ):
                scripts.create_script(session=session, actor=OPERATOR, tenant=tenant, draft=draft)
            _, token = tokens.create_token(session=session, actor=OPERATOR, tenant=tenant)
            plan.append((tenant.slug, tenant.id or 0, integration.id or 0, token))
        session.commit()
    runtime.close()
    hits = _load_cache(data_dir / "switchboard.db", plan, big_numbers)
    return {"tokens": [p[3] for p in plan], "hits": hits}


def _load_cache(path: Path, plan: list[tuple[str, int, int, str]], big_numbers: int) -> list[list[str]]:
    """Bulk-insert the cache (setup, not product code); returns some cached numbers per tenant for the load."""
    from core.numbers import national_form

    rng = random.Random(1)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    hits: list[list[str]] = []
    record_pk = number_pk = 0
    for position, (_, _, integration_id, _) in enumerate(plan):
        count = big_numbers if position == 0 else SMALL_TENANT_NUMBERS
        prefix = "+316" if position == 0 else "+3120"  # mobiles 061-065 and Amsterdam: valid ranges
        values = rng.sample(range(10_000_000, 60_000_000) if position == 0 else range(1_000_000, 10_000_000), count)
        records, numbers = [], []
        records_wanted = count * 7 // 10
        for index, value in enumerate(values):
            e164 = f"{prefix}{value}"
            if index < records_wanted:
                record_pk += 1
                records.append((record_pk, integration_id, 1, str(index), _fields(index)))
                owner = record_pk
            else:
                owner = record_pk - rng.randrange(records_wanted)  # a second number of an earlier record
            number_pk += 1
            national = "0" + e164[3:]  # core.numbers.national_form for a Dutch number in a Dutch tenant (checked below)
            numbers.append((number_pk, integration_id, 1, owner, e164, e164[:0:-1], e164, "Phone", national))
        connection.executemany(
            "INSERT INTO cachedrecord (id, integration_id, generation, record_id, fields) VALUES (?, ?, ?, ?, ?)",
            records,
        )
        connection.executemany(
            "INSERT INTO cachednumber (id, integration_id, generation, record_pk, e164, suffix, raw, label, national)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            numbers,
        )
        for number in numbers[:100]:
            assert number[8] == national_form(number[4], country="NL"), number
        connection.execute("UPDATE integration SET active_generation = 1 WHERE id = ?", (integration_id,))
        hits.append([n[4] for n in rng.sample(numbers, min(HIT_SAMPLE if position == 0 else 200, len(numbers)))])
    connection.commit()
    connection.execute("ANALYZE")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return hits


def lookup_paths(setup: dict[str, object], count: int = DISTINCT_LOOKUPS, seed: int = 2) -> list[tuple[str, str]]:
    """(path, token) pairs: 70% hits in the big tenant, 10% misses there, 20% hits and misses in small ones.

    Each big-tenant number comes once (while the sample lasts). The misses alone are more distinct numbers than
    ``core.numbers`` keeps parsed, so each parses its number, as a new caller's would (hits are found by their
    E.164 without parsing).
    """
    rng = random.Random(seed)
    tokens: list[str] = setup["tokens"]  # type: ignore[assignment]
    hits: list[list[str]] = setup["hits"]  # type: ignore[assignment]
    big = hits[0][:]
    rng.shuffle(big)
    paths = []
    for index in range(count):
        roll = index % 10
        if roll < 7:
            tenant, number = 0, big[(index // 10 * 7 + roll) % len(big)]
        elif roll == 7:
            tenant, number = 0, f"+316{rng.randrange(10_000_000, 60_000_000)}"
        else:
            tenant = rng.randrange(1, len(tokens))
            number = rng.choice(hits[tenant]) if roll == 8 else f"+3120{rng.randrange(10**6, 10**7)}"
        paths.append((f"/v1/lookup?number={quote(number)}", tokens[tenant]))
    return paths


# --- the load -----------------------------------------------------------------------------------------------


def _request(path: str, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode()


async def _worker(
    port: int, requests: list[bytes], offset: int, until: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    index = offset
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(requests[index % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if head[9:12] != b"200":
                errors.append(int(head[9:12]))
            index += 1
    finally:
        writer.close()


async def _load(port: int, requests: list[bytes], seconds: float) -> tuple[list[float], list[int], float]:
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    until = started + seconds
    spread = max(len(requests) // CONNECTIONS, 1)  # each connection walks its own part of the list
    workers = [_worker(port, requests, i * spread, until, latencies, errors) for i in range(CONNECTIONS)]
    results = await asyncio.gather(*workers, return_exceptions=True)
    errors.extend(-1 for result in results if isinstance(result, BaseException))
    return latencies, errors, time.perf_counter() - started


def run_client(port: int, phases: list[tuple[str, list[tuple[str, str | None]]]], seconds: float) -> list[Figures]:
    """Load each phase for ``seconds`` and summarise it."""
    figures = []
    for name, targets in phases:
        requests = [_request(path, token) for path, token in targets]
        latencies, errors, elapsed = asyncio.run(_load(port, requests, seconds))
        latencies.sort()
        count = len(latencies)
        figures.append(
            Figures(
                name=name,
                requests=count,
                seconds=elapsed,
                p50_ms=latencies[count // 2] * 1000 if count else 0.0,
                p99_ms=latencies[min(count - 1, int(count * 0.99))] * 1000 if count else 0.0,
                errors=len(errors),
            )
        )
    return figures


# --- processes ----------------------------------------------------------------------------------------------


class _Responder(asyncio.Protocol):
    """Answers every request on a connection with the same small 200 response (the client's ceiling)."""

    RESPONSE = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{"status":"ok"}'

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(self.RESPONSE)


async def _respond(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Responder, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int, path: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> float:
    """Seconds until ``path`` answers 200."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if sock.recv(64)[9:12] == b"200":
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError("the server did not become ready")


def _rss_mb(pid: int) -> tuple[float, float, float]:
    """(current, peak, file-backed) resident memory of a process in MB.

    The file-backed part is shared libraries and mapped files (page cache the kernel shares); the target is
    judged on the whole peak RSS.
    """
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssFile"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0), values.get("RssFile", 0.0)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _client_process(port: int, phases: object, seconds: float) -> list[Figures]:
    """Run the load in a separate process, so client and server do not share an interpreter."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump({"port": port, "phases": phases, "seconds": seconds}, spec)
    try:
        output = subprocess.run(
            [sys.executable, "-m", "tests.bench.bench_lookup", "client", spec.name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        os.unlink(spec.name)
    return [Figures(**item) for item in json.loads(output)]


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rotated(targets: list[T], shift: int) -> list[T]:
    """``targets`` starting ``shift`` entries on: each connection then starts ``shift`` further into its part."""
    shift %= max(len(targets), 1)
    return targets[shift:] + targets[:shift]


def _phase(port: int, pid: int, name: str, targets: list[tuple[str, str | None]]) -> Figures:
    """Warm up, then load for :data:`SECONDS` and note the server's CPU time per request.

    The measured load starts where the warm-up cannot have reached, so it asks for numbers not asked before.
    """
    _client_process(port, [[name, targets]], WARMUP_SECONDS)
    before = _cpu_seconds(pid)
    (figures,) = _client_process(port, [[name, _rotated(targets, WARMUP_SKIP)]], SECONDS)
    figures.server_cpu_us = (_cpu_seconds(pid) - before) / max(figures.requests, 1) * 1e6
    return figures


# --- the report ---------------------------------------------------------------------------------------------

HEADER = f"{'target':<34}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'requests':>10}{'server CPU/req':>16}"


def _row(figures: Figures) -> str:
    cpu = f"{figures.server_cpu_us:,.0f} us" if figures.server_cpu_us else "-"
    return (
        f"{figures.name:<34}{figures.rate:>10,.0f}{figures.p50_ms:>9.2f}{figures.p99_ms:>9.2f}"
        f"{figures.errors:>8}{figures.requests:>10,}{cpu:>16}"
    )


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def _combined(figures: list[Figures], name: str) -> Figures:
    """The rounds whose name starts with ``name`` together: total requests over total time, worst p99."""
    rows = [f for f in figures if f.name.startswith(name)]
    requests = sum(f.requests for f in rows)
    cpu = sum((f.server_cpu_us or 0) * f.requests for f in rows) / max(requests, 1)
    p50 = sorted(f.p50_ms for f in rows)[len(rows) // 2]
    return Figures(f"{name}, all rounds", requests, sum(f.seconds for f in rows), p50, max(f.p99_ms for f in rows),
                   sum(f.errors for f in rows), cpu)  # fmt: skip


@dataclass
class Run:
    """Everything one benchmark run measured."""

    figures: list[Figures]
    ready: float
    rss: tuple[float, float, float]
    big_numbers: int
    load: tuple[float, float, float]


def report(run: Run) -> None:
    """Print the table and the targets."""
    health, lookup = _combined(run.figures, "GET /healthz"), _combined(run.figures, "GET /v1/lookup")
    returning = _combined(run.figures, "returning callers")
    ratio = lookup.rate / health.rate if health.rate else 0.0
    cpu_ratio = health.server_cpu_us / lookup.server_cpu_us if lookup.server_cpu_us and health.server_cpu_us else 0.0
    errors = health.errors + lookup.errors
    print(
        f"\nlookup shim: SQLite, {run.big_numbers:,} cached numbers in one tenant + {SMALL_TENANTS} tenants x "
        f"{SMALL_TENANT_NUMBERS:,}; {CONNECTIONS} connections, {SECONDS:.0f} s per row, {os.cpu_count()} cores, "
        f"load average {run.load[0]:.1f} / {run.load[1]:.1f} at the start"
    )
    print(HEADER)
    for item in [*run.figures, health, lookup, returning]:
        print(_row(item))
    print(f"lookup / healthz throughput   {ratio:6.0%}  (>= {TARGET_RATIO:.0%})  {_verdict(ratio >= TARGET_RATIO)}")
    print(f"  same, by server CPU/request {cpu_ratio:6.0%}  (less disturbed by other work on the machine)")
    print(
        f"  returning callers           {returning.rate / health.rate if health.rate else 0:6.0%}  "
        "(numbers parsed before; the targets are judged on new callers)"
    )
    print(f"lookup p99                    {lookup.p99_ms:6.1f} ms (<= {TARGET_P99_MS:.0f} ms)  "
          f"{_verdict(lookup.p99_ms <= TARGET_P99_MS)}")  # fmt: skip
    print(f"errors                        {errors:6d}     (0)  {_verdict(errors == 0)}")
    ready_ok = _verdict(run.ready <= TARGET_READY_S)
    print(f"ready after start             {run.ready:6.2f} s  (<= {TARGET_READY_S:.0f} s)  {ready_ok}")
    print(f"server RSS after load (peak)  {run.rss[0]:6.0f} MB ({run.rss[1]:.0f} MB peak; <= {TARGET_RSS_MB:.0f} MB)  "
          f"{_verdict(run.rss[1] <= TARGET_RSS_MB)}")  # fmt: skip
    print(f"  of which file-backed        {run.rss[2]:6.0f} MB (shared libraries and mapped files)")


# --- the run ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Build the database, measure the client's ceiling, start the server, load it, print the table."""
    args = sys.argv[1:] if argv is None else argv
    big_numbers = 100_000 if "--quick" in args else BIG_TENANT_NUMBERS
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp:
        data_dir = Path(tmp)
        started = time.perf_counter()
        setup = build_database(data_dir, big_numbers)
        print(f"built the database in {time.perf_counter() - started:.1f} s", flush=True)
        figures, ready, rss = _measure(data_dir, setup)
    report(Run(figures, ready, rss, big_numbers, load))


def _ceiling() -> Figures:
    port = _free_port()
    responder = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_lookup", "responder", str(port)])
    try:
        _wait_ready(port, "/", responder)
        return _phase(port, responder.pid, "client ceiling (raw asyncio)", [("/", None)])
    finally:
        _stop(responder)


def _measure(data_dir: Path, setup: dict[str, object]) -> tuple[list[Figures], float, tuple[float, float, float]]:
    figures = [_ceiling()]
    port = _free_port()
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(data_dir), "SWITCHBOARD_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-c", "from core.cli import main; main()", "serve", "--no-ssh", "--no-scheduler",
               "--http-port", str(port)]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        ready = _wait_ready(port, "/healthz", server)
        health: list[tuple[str, str | None]] = [("/healthz", None)]
        lookups: list[tuple[str, str | None]] = list(lookup_paths(setup))
        returning = lookup_paths(setup, RETURNING_CALLERS, seed=3)
        for round_ in (1, 2):
            # Round 2 starts halfway through each connection's part: new callers again, not round 1's.
            fresh = _rotated(lookups, (round_ - 1) * len(lookups) // CONNECTIONS // 2)
            figures.append(_phase(port, server.pid, f"GET /healthz (round {round_})", health))
            figures.append(_phase(port, server.pid, f"GET /v1/lookup (round {round_})", fresh))
            figures.append(_phase(port, server.pid, f"returning callers (round {round_})", returning))
        rss = _rss_mb(server.pid)
    finally:
        _stop(server)
    return figures, ready, rss


def _client_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    phases = [(name, [(path, token) for path, token in targets]) for name, targets in spec["phases"]]
    figures = run_client(spec["port"], phases, spec["seconds"])
    print(json.dumps([f.__dict__ for f in figures]))


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        _client_main(sys.argv[2])
    elif sys.argv[1:2] == ["responder"]:
        asyncio.run(_respond(int(sys.argv[2])))
    else:
        main()
