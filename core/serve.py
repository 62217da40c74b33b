"""``switchboard serve``: the HTTP shim, the sync scheduler and the front ends' services on one asyncio loop.

Each part can be switched off, so several nodes can share one PostgreSQL database: some serving lookups, some
serving admins, any number running the scheduler. Front ends (the SSH server) plug in through the entry-point
group ``switchboard.services``, so core never imports them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import import_module
from importlib.metadata import entry_points
from typing import Protocol

from core.runtime import Runtime

log = logging.getLogger("switchboard.serve")

SERVICE_GROUP = "switchboard.services"


def default_node_name() -> str:
    """This node's name in leases and logs: host name and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class ServeOptions:
    """What to run and where; every part can be switched off."""

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    ssh_host: str = "127.0.0.1"
    ssh_port: int = 2222
    http: bool = True
    ssh: bool = True
    scheduler: bool = True
    node: str = field(default_factory=default_node_name)
    ssh_idle_timeout: float = 1800.0
    ssh_max_sessions: int = 100
    ssh_max_sessions_per_user: int = 10


class Service(Protocol):
    """One long-running part of the server."""

    name: str

    async def start(self) -> None:
        """Return once listening or ready."""

    async def stop(self) -> None:
        """Stop gracefully, leaving no task, thread or child process behind."""

    def describe(self) -> list[str]:
        """Lines for the operator: addresses, how to connect."""


ServiceFactory = Callable[[Runtime, ServeOptions], Service]

# Core's own services, by module path so that importing this module stays cheap.
CORE_SERVICES: dict[str, str] = {
    "http": "core.shim.service:HttpService",
    "scheduler": "core.scheduler:SchedulerService",
}


def _load(path: str) -> ServiceFactory:
    module, _, attr = path.partition(":")
    factory: ServiceFactory = getattr(import_module(module), attr)
    return factory


def build_services(
    runtime: Runtime, options: ServeOptions, *, warn: Callable[[str], None] = log.warning
) -> list[Service]:
    """The services the options ask for: core's, then the front ends' found by entry point.

    A part that cannot be loaded is reported through ``warn`` and left out, so the others still serve.
    """
    wanted = {"http": options.http, "scheduler": options.scheduler, "ssh": options.ssh}
    loaders: list[tuple[str, Callable[[], ServiceFactory]]] = [
        (name, partial(_load, path)) for name, path in CORE_SERVICES.items()
    ]
    loaders += [(entry.name, entry.load) for entry in entry_points(group=SERVICE_GROUP)]
    services: list[Service] = []
    for name, load in loaders:
        if not wanted.get(name, True):
            continue
        try:
            factory = load()
        except (ImportError, AttributeError) as exc:
            warn(f"the {name} service is not available in this build ({exc}); running without it")
            continue
        services.append(factory(runtime, options))
    return services


async def run_services(
    services: list[Service], *, announce: Callable[[str], None] = print, stop_event: asyncio.Event | None = None
) -> None:
    """Start every service, print how to reach them, wait for SIGINT/SIGTERM, then stop them in reverse order."""
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
    started: list[Service] = []
    try:
        for service in services:
            await service.start()
            started.append(service)
            for line in service.describe():
                announce(line)
        # Everything made so far (modules, caches, presets) lives as long as the process: keep it out of the
        # garbage collector's full passes, which otherwise stall the loop for 100 ms and more under load.
        gc.collect()
        gc.freeze()
        announce("switchboard is running; press Ctrl+C to stop")
        await stop.wait()
        announce("stopping…")
    finally:
        for service in reversed(started):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", service.name)
        for sig in installed:
            loop.remove_signal_handler(sig)
