"""Enclave's hot paths, compiled where it pays, with a pure-Python twin of each.

``import enclave._fast`` picks the compiled modules and falls back to the pure twins
when they are missing or when ``ENCLAVE_PURE=1`` is set. ``NATIVE`` tells which
loaded. Both twins expose exactly the same API and pass the same tests.

``Pool`` is pure Python in every build: its compiled twin stayed below the 5x it had
to earn over the pure one on the node's calls, and was dropped (PERFORMANCE.md).
"""

import os

from ._pool import Pool

NATIVE = False

if os.environ.get("ENCLAVE_PURE", "") in ("", "0"):
    try:
        from ._frames_c import FrameSplitter
        from ._gcm_c import CountedGcm
        from ._ring_c import ReplayRing

        NATIVE = True
    except ImportError:  # not built: fall back to the pure twins below
        pass

if not NATIVE:
    from ._frames_py import FrameSplitter  # type: ignore[assignment]
    from ._gcm_py import CountedGcm  # type: ignore[assignment]
    from ._ring_py import ReplayRing  # type: ignore[assignment]

__all__ = ["NATIVE", "CountedGcm", "FrameSplitter", "Pool", "ReplayRing"]
