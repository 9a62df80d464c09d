"""Example counts for the property and fuzz tests.

CI runs each property with its default count. ``ENCLAVE_FUZZ_EXAMPLES=N`` raises every
count to at least N for a dedicated long run, e.g. the 100,000-example acceptance run:
``ENCLAVE_FUZZ_EXAMPLES=100000 python -m pytest -q -p no:randomly tests/test_fast_twins.py``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def examples(default: int) -> int:
    """``default``, or more when ENCLAVE_FUZZ_EXAMPLES asks for a long run."""
    wanted = os.environ.get("ENCLAVE_FUZZ_EXAMPLES", "")
    return max(default, int(wanted)) if wanted else default


def fuzz(default: int) -> settings:
    """Settings for a property that may be slow per example and uses fixtures."""
    return settings(
        max_examples=examples(default),
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # fixtures hold for every example
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
