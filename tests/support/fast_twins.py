"""Run one test body against both twins of an ``enclave._fast`` module.

A test module binds ``twin = twin_fixture("frames")`` and its tests take ``twin``: the
compiled module (``native``) or the pure one (``pure``), imported directly, whatever
``ENCLAVE_PURE`` says. A missing compiled twin skips its half here;
``test_fast_twins.test_native_loaded`` is the test that fails for it.
"""

from __future__ import annotations

import importlib
import struct
from types import ModuleType

import pytest

TWINS = ("native", "pure")
_SUFFIX = {"native": "_c", "pure": "_py"}


def load_twin(stem: str, twin: str) -> ModuleType:
    name = f"enclave._fast._{stem}{_SUFFIX[twin]}"
    try:
        return importlib.import_module(name)
    except ImportError:
        if twin == "native":
            pytest.skip(f"{name} is not built")
        raise


def twin_fixture(stem: str):
    @pytest.fixture(params=TWINS)
    def twin(request: pytest.FixtureRequest) -> ModuleType:
        return load_twin(stem, request.param)

    return twin


def frame(payload: bytes) -> bytes:
    """One wire frame: 4-byte big-endian length, then the payload."""
    return struct.pack(">I", len(payload)) + payload


def header(declared: int) -> bytes:
    return struct.pack(">I", declared)
