"""Run the SSH service with the stand-in child in a process of its own, for the ``kill -9`` test.

``python -m tests.sshd.run_server DATA_DIR DATABASE_URL`` prints one line of JSON once the pool is full:
``{"port": ..., "helper": <fork server pid>, "pool": [<waiting children>]}``, then serves until killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from core.runtime import open_runtime
from core.settings import Settings
from sshd.service import SshService
from tests.sshd.conftest import server_config


async def serve(data_dir: Path, url: str) -> None:
    """Start the service, report its port and processes, and wait forever."""
    runtime = open_runtime(Settings(data_dir=data_dir, database_url=url), migrate=False)
    service = SshService(runtime, server_config(runtime, pool_size=2))
    await service.start()
    while service.pool.idle < 2:
        await asyncio.sleep(0.05)
    report = {"port": service.port, "helper": service.pool.spawner_pid(), "pool": service.pool.idle_pids()}
    print(json.dumps(report), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]), sys.argv[2]))
