"""Build Enclave's compiled hot paths (enclave/_fast/*.pyx).

A failed native build is an error, never a silent fallback: a pure-Python build
happens only when asked for with ENCLAVE_PURE_BUILD=1, and the build prints which
one it produced.
"""

import os
import sys
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent
FAST = HERE / "enclave" / "_fast"
PURE_BUILD = os.environ.get("ENCLAVE_PURE_BUILD", "") not in ("", "0")


def banner(text: str) -> None:
    line = "*" * 72
    print(f"{line}\n* Enclave build: {text}\n{line}", file=sys.stderr)


def native_extensions() -> list[Extension]:
    from Cython.Build import cythonize

    sources = sorted(FAST.glob("*.pyx"))
    extensions = [
        Extension(
            f"enclave._fast.{src.stem}",
            [str(src.relative_to(HERE))],
            extra_compile_args=["-O2"],
        )
        for src in sources
    ]
    return cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": True, "wraparound": False},
    )


if PURE_BUILD:
    banner("PURE build requested (ENCLAVE_PURE_BUILD=1): no compiled modules")
    ext_modules = []
else:
    ext_modules = native_extensions()
    banner(f"NATIVE build: {', '.join(e.name for e in ext_modules)}")

setup(ext_modules=ext_modules)
