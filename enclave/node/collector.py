"""The process's garbage collector, settled once a node has started.

A node's long-lived objects (modules, settings, keys, the ring's table, caches) are
all made by the time it listens. Left in the collector's generations, every full
collection walks them again: a pause of milliseconds on the loop that shows as a
message's tail latency (PERFORMANCE.md, "Tails"). ``settle`` collects once, then
freezes what survived, so later collections walk only what the node made since.

Rules:
- Process-wide (the collector is), so once per process; a second node in the same
  process only collects what it made itself.
- Nothing is leaked: frozen objects are still freed when their references go (only
  cycles among them wait for ``gc.unfreeze``), and a node starts with few of those.
"""

from __future__ import annotations

import gc

_settled = False


def settle() -> bool:
    """Collect, then freeze what survived (once per process); True if it did now."""
    global _settled
    if _settled:
        return False
    _settled = True
    gc.collect()
    gc.freeze()
    return True
