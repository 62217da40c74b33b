"""Run every benchmark module (``tests/bench/bench_*.py``) in turn; each prints its own table.

``python -m tests.bench`` runs them all; ``python -m tests.bench lookup`` only those whose name contains "lookup".
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import tests.bench


def main(argv: list[str]) -> None:
    """Import each ``bench_*`` module and call its ``main()``."""
    wanted = argv[1:]
    for info in sorted(pkgutil.iter_modules(tests.bench.__path__), key=lambda m: m.name):
        if not info.name.startswith("bench_") or (wanted and not any(w in info.name for w in wanted)):
            continue
        module = importlib.import_module(f"tests.bench.{info.name}")
        print(f"== {info.name}", flush=True)
        module.main()


if __name__ == "__main__":
    main(sys.argv)
