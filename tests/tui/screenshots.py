"""Write SVG screenshots of the admin app's main screens (``make screenshots``), from the demo organisation.

    python -m tests.tui.screenshots [OUT_DIR]      # default: docs/screenshots

Each screen at 80x24 and 120x40: home, the wizard's first step, an integration's overview, the script editor.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

from core.db import init_db, make_engine
from core.runtime import Runtime
from core.security import SecretBox
from core.settings import Settings
from tests.tui import demo
from tui.app import SwitchboardApp, make_app


def demo_app(data_dir: Path) -> SwitchboardApp:
    """The app over a fresh demo database in ``data_dir``."""
    url = f"sqlite:///{data_dir / 'switchboard.db'}"
    engine = make_engine(url)
    init_db(engine)
    runtime = Runtime(Settings(data_dir=data_dir, database_url=url), engine, SecretBox(Fernet.generate_key()))
    identity = demo.build(runtime)
    return make_app(runtime=runtime, identity=identity, clock=demo.clock, poll_interval=3600.0)


async def shoot(out: Path) -> list[Path]:
    """Take every screenshot; returns the files written."""
    written = []
    with tempfile.TemporaryDirectory() as scratch, demo.frozen_clock():
        app = demo_app(Path(scratch))
        for name, scenario in demo.SCENARIOS.items():
            for width, height in demo.SIZES:
                app = make_app(runtime=app.runtime, identity=app.identity, clock=demo.clock, poll_interval=3600.0)
                async with app.run_test(size=(width, height)) as pilot:
                    await scenario(pilot)
                    filename = f"{name}-{width}x{height}.svg"
                    app.save_screenshot(filename, str(out))
                    written.append(out / filename)
        app.runtime.close()
    return written


def main(argv: list[str]) -> None:
    """Write the screenshots into ``argv[0]`` (default ``docs/screenshots``)."""
    out = Path(argv[0] if argv else "docs/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(shoot(out)):
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
