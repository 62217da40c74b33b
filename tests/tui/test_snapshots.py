"""Snapshots of the main screens at 80x24 and 120x40, from the fixed demo organisation.

After a deliberate change to how a screen looks, look at the new pictures (``pytest --snapshot-report``
shows old and new side by side) and accept them with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.runtime import Runtime
from tests.tui import demo
from tests.tui.conftest import sqlite_only
from tui.app import make_app


@sqlite_only
@pytest.mark.parametrize("size", demo.SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
@pytest.mark.parametrize("screen", list(demo.SCENARIOS))
def test_screen_looks_as_approved(snap_compare: Any, runtime: Runtime, screen: str, size: tuple[int, int]) -> None:
    identity = demo.build(runtime)
    app = make_app(runtime=runtime, identity=identity, clock=demo.clock, poll_interval=3600.0)
    with demo.frozen_clock():
        assert snap_compare(app, terminal_size=size, run_before=demo.SCENARIOS[screen])
