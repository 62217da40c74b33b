"""The serve loop: starts the parts that are switched on, announces them, stops them in reverse order."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.runtime import Runtime
from core.serve import ServeOptions, build_services, run_services


class FakeService:
    def __init__(self, name: str, log: list[str], fail_stop: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail_stop = fail_stop

    async def start(self) -> None:
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError("boom")

    def describe(self) -> list[str]:
        return [f"{self.name} at somewhere"]


async def test_services_start_in_order_and_stop_in_reverse_even_when_one_fails() -> None:
    log: list[str] = []
    stop = asyncio.Event()
    services = [FakeService("http", log), FakeService("scheduler", log, fail_stop=True), FakeService("ssh", log)]
    announced: list[str] = []
    task = asyncio.create_task(run_services(services, announce=announced.append, stop_event=stop))
    while "switchboard is running; press Ctrl+C to stop" not in announced:
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert log == ["start http", "start scheduler", "start ssh", "stop ssh", "stop scheduler", "stop http"]
    assert announced[:3] == ["http at somewhere", "scheduler at somewhere", "ssh at somewhere"]


def test_switched_off_parts_are_not_built(runtime: Runtime) -> None:
    warnings: list[str] = []
    options = ServeOptions(http=False, ssh=False, scheduler=False)
    assert build_services(runtime, options, warn=warnings.append) == []
    assert warnings == []


@pytest.mark.timeout(60)
def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from core.cli import main; main()",
            "serve",
            "--http-port",
            "0",
            "--ssh-port",
            "0",
            "--no-scheduler",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "switchboard is running" in line:
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopping" in out
