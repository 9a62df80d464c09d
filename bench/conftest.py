"""Benchmark plumbing: collect ``bench_*.py``, load twins, print native/pure ratios.

- ``pytest bench/`` collects ``bench_*.py`` as test modules (``pytest
  bench/bench_fast.py`` already does, since pytest collects files named on the command
  line whatever their name).
- The ``frames``, ``ring`` and ``gcm`` fixtures give the compiled module (``native``)
  and the pure one (``pure``) of an ``enclave._fast`` pair, imported directly.
- A benchmark that sets ``extra_info["ops"]`` (operations per timed call) and
  ``extra_info["twin"]`` gets a line in the summary: the per-operation median of each
  twin and the speed-up, pure time ÷ native time, per group.
"""

from __future__ import annotations

import importlib

import pytest

TWINS = ("native", "pure")
_SUFFIX = {"native": "_c", "pure": "_py"}


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        if not parent.session.isinitpath(file_path):  # named files are collected anyway
            return pytest.Module.from_parent(parent, path=file_path)
    return None


def _load(stem: str, twin: str):
    name = f"enclave._fast._{stem}{_SUFFIX[twin]}"
    try:
        return importlib.import_module(name)
    except ImportError:
        if twin == "native":
            pytest.skip(f"{name} is not built")
        raise


@pytest.fixture(params=TWINS)
def frames(request):
    return _load("frames", request.param)


@pytest.fixture(params=TWINS)
def ring(request):
    return _load("ring", request.param)


@pytest.fixture(params=TWINS)
def gcm(request):
    return _load("gcm", request.param)


def _per_op_medians(session) -> dict[str, dict[str, float]]:
    groups: dict[str, dict[str, float]] = {}
    for bench in getattr(session, "benchmarks", []):
        ops = bench.extra_info.get("ops")
        twin = bench.extra_info.get("twin")
        if not (ops and twin and bench.stats):
            continue
        groups.setdefault(bench.group, {})[twin] = bench.stats.median / ops
    return groups


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)  # pytest-benchmark's own session
    groups = _per_op_medians(session) if session is not None else {}
    if not groups:
        return
    write = terminalreporter.write_line
    terminalreporter.section("native vs pure, median per operation")
    write(f"{'group':<54} {'native':>9} {'pure':>9} {'speed-up':>9}")
    for group, times in sorted(groups.items()):
        native, pure = times.get("native"), times.get("pure")
        speedup = f"{pure / native:.1f}x" if native and pure else "-"  # pure time / native time
        write(f"{group:<54} {_ns(native):>9} {_ns(pure):>9} {speedup:>9}")


def _ns(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e9:,.0f} ns"
