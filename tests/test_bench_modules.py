"""Every benchmark module imports and has a ``main()``, so ``make bench`` cannot break unnoticed."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import tests.bench

MODULES = sorted(m.name for m in pkgutil.iter_modules(tests.bench.__path__) if m.name.startswith("bench_"))


def test_there_are_benchmarks() -> None:
    assert {"bench_lookup", "bench_sync", "bench_ssh"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_module_imports_and_has_main(name: str) -> None:
    module = importlib.import_module(f"tests.bench.{name}")
    assert callable(module.main)
