"""The ``lab`` fixture: a fresh network lab per test, skipped only where it cannot run."""

import pytest

from lab.netns import Lab, unavailable


@pytest.fixture
def lab():
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    net = Lab()
    try:
        yield net
    finally:
        net.close()
