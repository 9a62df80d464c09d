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


# A module that calls a C library names it here (the store's sealing calls OpenSSL's
# libcrypto, whose headers come with Debian's libssl-dev).
LIBRARIES = {"_gcm_c": ["crypto"]}
HEADERS = {"_gcm_c": ("openssl/evp.h", "libssl-dev (Debian) or openssl-devel (Fedora)")}


def check_headers(stem: str) -> None:
    """Fail with one plain line when a C library's headers are missing."""
    if stem not in HEADERS:
        return
    header, package = HEADERS[stem]
    import sysconfig

    places = [Path("/usr/include"), Path("/usr/local/include")]
    places += [Path(p) for p in (sysconfig.get_config_var("INCLUDEDIR"),) if p]
    if not any((place / header).exists() for place in places):
        sys.exit(
            f"Enclave build: {header} is missing: install {package}, or build pure "
            "Python with ENCLAVE_PURE_BUILD=1"
        )


def native_extensions() -> list[Extension]:
    from Cython.Build import cythonize

    sources = sorted(FAST.glob("*.pyx"))
    for src in sources:
        check_headers(src.stem)
    extensions = [
        Extension(
            f"enclave._fast.{src.stem}",
            [str(src.relative_to(HERE))],
            extra_compile_args=["-O2"],
            libraries=LIBRARIES.get(src.stem, []),
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
