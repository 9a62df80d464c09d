"""The ``lab`` fixture: a fresh network lab per test, skipped only where it cannot run
(not root, or the tools are missing). In CI, which runs as root and installs the tools,
a missing tool fails instead of skipping, so the lab can never vanish silently."""

import os

import pytest

from lab.netns import Lab, unavailable


@pytest.fixture
def lab():
    reason = unavailable()
    if reason:
        if os.environ.get("CI") == "true" and os.geteuid() == 0:
            pytest.fail(reason)
        pytest.skip(reason)
    net = Lab()
    try:
        yield net
    finally:
        net.close()
