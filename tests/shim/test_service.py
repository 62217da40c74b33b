"""``HttpService`` on the serve loop, and ``switchboard lookup`` giving the shim's answer at the command line."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from core.cli import main
from core.errors import ConfigurationError
from core.lookup import LookupUnavailable
from core.runtime import Runtime
from core.serve import ServeOptions
from core.shim.app import create_app
from core.shim.service import HttpService
from tests.shim.conftest import ServerThread, World


async def test_starts_on_the_running_loop_describes_itself_and_stops_cleanly(runtime: Runtime) -> None:
    threads_before = set(threading.enumerate())
    service = HttpService(runtime, ServeOptions(http_port=0))
    await service.start()
    try:
        assert service.port > 0
        lines = service.describe()
        assert lines[0].startswith(f"HTTP lookup shim: http://127.0.0.1:{service.port}")
        assert "curl -H 'Authorization: Bearer <token>'" in lines[1]
        async with httpx.AsyncClient(base_url=service.url) as client:
            assert (await client.get("/healthz")).status_code == 200
    finally:
        await service.stop()
    await asyncio.sleep(0)
    assert set(threading.enumerate()) <= threads_before
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=service.url) as client:
            await client.get("/healthz")


async def test_a_busy_port_is_a_clear_error(runtime: Runtime) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = HttpService(runtime, ServeOptions(http_port=port))
        with pytest.raises(ConfigurationError) as info:
            await service.start()
    assert info.value.field == "http_port" and str(port) in info.value.message
    await service.stop()  # nothing was started: nothing to stop


def test_cli_lookup_prints_the_shims_answer(
    shim: ServerThread, world: World, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--data-dir", str(tmp_path / "cli"), "--database-url", engine.url.render_as_string(hide_password=False)]
    main([*base, "lookup", "--tenant", "acme", "+31 20 123 4567", "--json"])
    printed = json.loads(capsys.readouterr().out)
    with httpx.Client(base_url=shim.url) as client:
        served = client.get(
            "/v1/lookup", params={"number": "+31 20 123 4567"}, headers={"Authorization": f"Bearer {world.acme_token}"}
        ).json()
    assert printed == served
    main([*base, "lookup", "--tenant", "acme", "0201234567"])
    text = capsys.readouterr().out
    assert "exact match in HubSpot (hubspot), record acme-1" in text
    assert "Jan Jansen" in text and "script Open in CRM (opens by itself): https://acme.example.com/1" in text
    main([*base, "lookup", "--tenant", "acme", "0207654321", "--ddi", "020 765 0000"])
    assert "no match" in capsys.readouterr().out


def test_cli_lookup_errors_exit_2(
    world: World, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--data-dir", str(tmp_path / "cli"), "--database-url", engine.url.render_as_string(hide_password=False)]
    for args in (["--tenant", "nosuch", "0201234567"], ["--tenant", "acme", "not a number"]):
        with pytest.raises(SystemExit) as info:
            main([*base, "lookup", *args])
        assert info.value.code == 2
        assert capsys.readouterr().err.startswith("error: ")


def test_an_unreachable_database_is_a_503_for_lookups_and_health(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    from core.db import make_engine
    from core.security import SecretBox
    from core.settings import Settings

    engine = make_engine(f"sqlite:///{tmp_path}")  # a directory: SQLite cannot open it
    runtime = Runtime(
        settings=Settings(data_dir=tmp_path / "data"), engine=engine, box=SecretBox(Fernet.generate_key())
    )
    try:
        with ServerThread(runtime) as server, httpx.Client(base_url=server.url) as client:
            response = client.get("/v1/lookup", params={"number": "0201234567"}, headers={"Authorization": "Bearer x"})
            assert response.status_code == 503 and response.json()["detail"]
            health = client.get("/healthz")
            assert health.status_code == 503 and health.json() == {"status": "degraded", "database": "unreachable"}
    finally:
        engine.dispose()


async def test_the_shim_reads_the_cache_ahead_within_its_time_and_starts_even_if_that_fails(
    runtime: Runtime, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(runtime)
    shim = app.state.shim
    try:
        with caplog.at_level(logging.INFO, logger="core.shim.app"):
            await shim.warm_up(seconds=0.0)  # out of time after the first step
        if not shim.inline:  # PostgreSQL: lookups run in threads and the server caches; nothing is read ahead
            assert "lookup cache" not in caplog.text
            return
        assert "the rest is read as lookups need it" in caplog.text
        caplog.clear()

        def unavailable() -> Iterator[None]:
            raise LookupUnavailable("the cache database did not answer; try again in a moment")
            yield

        monkeypatch.setattr(shim.lookups, "warm_up", unavailable)
        with caplog.at_level(logging.INFO, logger="core.shim.app"):
            await shim.warm_up()
        assert "could not read the lookup cache ahead" in caplog.text
    finally:
        shim.close()
