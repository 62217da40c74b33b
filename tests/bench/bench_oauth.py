"""OAuth sign-in benchmark: how long the admin's browser waits on ``GET /oauth/callback``, and token writes.

Setup: a SQLite database in a temporary directory, the real HTTP shim (``HttpService``) in a thread, and the
emulated SuperOffice tenant (sign-in page and token endpoint) on 127.0.0.1. Each sign-in is begun with
``begin_authorization``; a client follows the sign-in address (302 to the shim) and the time of the callback
request alone is measured: the state check, the atomic claim, the code exchange with the CRM and the sealed
write. Token renewal: ``token_saver`` (what the sync calls on every renewal) timed over many writes.

Figures: callback p50/p99 in ms (the CRM's own answer time is part of it: here a loopback emulator), the
whole sign-in round trip, and token writes per second. No targets are set by the issue; these show that the
callback answers at once and a renewal costs a single short write.

Run: ``python -m tests.bench oauth``.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from sqlmodel import Session

from core.db import init_db, make_engine
from core.runtime import Runtime
from core.security import SecretBox
from core.serve import ServeOptions
from core.services import integrations, tenants
from core.services.audit import Actor
from core.services.integration_tokens import token_saver
from core.services.oauth import begin_authorization
from core.settings import Settings
from core.shim.service import HttpService
from tests.crm.server import serve
from tests.crm.superoffice import SuperOfficeEmulator

SIGN_INS = 200
TOKEN_WRITES = 2_000
TENANT = "Cust1"
ADMIN = Actor(name="bench@example.com")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class _Shim:
    """The shim on its own event loop in a thread, as ``switchboard serve`` runs it."""

    def __init__(self, runtime: Runtime) -> None:
        self.service = HttpService(runtime, ServeOptions(http_port=0))
        self.stalls: list[float] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        await self.service.start()
        probe = asyncio.create_task(self._probe())
        self._ready.set()
        await self._stop.wait()
        probe.cancel()
        await self.service.stop()

    async def _probe(self) -> None:
        """Record the longest time the shim's event loop could not run a 1 ms timer (what lookups would wait)."""
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.stalls.append((time.perf_counter() - before) * 1000 - 1)

    def __enter__(self) -> _Shim:
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def _sign_ins(runtime: Runtime, shim_url: str, crm_url: str) -> tuple[list[float], list[float]]:
    settings = {"tenant": TENANT, "client_id": "bench", "client_secret": "bench-secret",
                "login_url": f"{crm_url}/login/common/oauth", "api_base_url": f"{crm_url}/{TENANT}/api/v1"}  # fmt: skip
    callbacks: list[float] = []
    totals: list[float] = []
    with Session(runtime.engine) as session, httpx.Client() as browser:
        tenant = tenants.create_tenant(session=session, actor=ADMIN, slug="bench", name="Bench", country="NL")
        session.commit()
        for _ in range(SIGN_INS):
            began = time.perf_counter()
            pending = begin_authorization(
                session=session, actor=ADMIN, tenant=tenant, box=runtime.box, preset_key="superoffice",
                settings=settings, redirect_base=shim_url,
            )  # fmt: skip
            session.commit()
            location = browser.get(pending.url).headers["location"]
            started = time.perf_counter()
            answer = browser.get(location)
            done = time.perf_counter()
            assert answer.status_code == 200, answer.text
            callbacks.append((done - started) * 1000)
            totals.append((done - began) * 1000)
    return callbacks, totals


def _baseline(shim: _Shim, crm_url: str) -> float:
    """The longest stall while the same process only sends plain requests (emulator, client and shim share it)."""
    with httpx.Client() as client:
        for _ in range(SIGN_INS):
            client.get(f"{crm_url}/login/common/oauth/authorize")
            client.get(f"{shim.service.url}/healthz")
    stall = max(shim.stalls)
    shim.stalls.clear()
    return stall


def _token_writes(runtime: Runtime) -> float:
    with Session(runtime.engine, expire_on_commit=False) as session:
        tenant = tenants.get_tenant(session=session, slug="bench")
        integration = integrations.create_integration(
            session=session, actor=ADMIN, tenant=tenant, box=runtime.box, preset="superoffice", name="SuperOffice",
            settings={"tenant": TENANT, "client_id": "bench"}, secrets={"client_secret": "bench-secret"},
        )  # fmt: skip
        session.commit()
    save = token_saver(engine=runtime.engine, box=runtime.box, integration=integration)
    started = time.perf_counter()
    for serial in range(TOKEN_WRITES):
        save({"access_token": f"at-{serial}", "refresh_token": "rt", "expires_at": str(serial)})
    return TOKEN_WRITES / (time.perf_counter() - started)


def main() -> None:
    """Measure and print the table."""
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        init_db(engine)
        runtime = Runtime(settings=Settings(data_dir=Path(folder)), engine=engine, box=SecretBox(Fernet.generate_key()))
        crm = SuperOfficeEmulator(tenant=TENANT, client_id="bench", client_secret="bench-secret")
        with serve(crm.app) as crm_url, _Shim(runtime) as shim:
            baseline = _baseline(shim, crm_url)
            callbacks, totals = _sign_ins(runtime, shim.service.url, crm_url)
            stall = max(shim.stalls)
        rate = _token_writes(runtime)
        engine.dispose()
    rows = [
        ("callback (state check, claim, code exchange, sealed write)", callbacks),
        ("whole sign-in (begin, CRM redirect, callback)", totals),
    ]
    print(f"{'OAuth sign-in on SQLite, ' + str(SIGN_INS) + ' sign-ins':<62} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in rows:
        print(f"{name:<62} {statistics.median(values):>8.1f} {_percentile(values, 0.99):>8.1f} {max(values):>8.1f}")
    print(f"{'longest stall of the shim event loop during the sign-ins, ms':<62} {stall:>8.1f}")
    print(f"{'  the same with plain requests only (this process is busy too), ms':<62} {baseline:>8.1f}")
    print(f"{'token renewals kept (token_saver writes per second)':<62} {rate:>8.0f}")


if __name__ == "__main__":
    main()
