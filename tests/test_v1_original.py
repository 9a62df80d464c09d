"""The original client as it really sends (tests/lab/v1_original.py), small, in every run.

Plain sends close at once without reading (half of them with a reset), pooled ones go
back to back on 3 sockets that are never read; each envelope is signed as it is sent.
The node process must show every one exactly once. The second case squeezes the
node's caps so that the contact's plain sends outrun them: they wait (parked, unread)
instead of being refused.
"""

import pytest
from lab import v1_original


@pytest.mark.parametrize(
    "settings",
    [None, {"max_per_address": 4, "preauth_per_address": 2, "crypto_queue": 2}],
    ids=["defaults", "tight-caps"],
)
def test_every_envelope_of_the_original_client_is_shown_once(rsa_keys, settings):
    result = v1_original.run(
        60, 60, threads=8, keys=(rsa_keys["bob"], rsa_keys["carol"]), settings=settings
    )
    print(v1_original.line(result))
    assert result["plain"] == (60, 60) and result["pooled"] == (60, 60)
    assert result["shown"] == (60, 60) and result["shown_twice"] == 0
    assert result["stored"] == {"p": (60, 60, 0), "q": (60, 60, 0)}
    assert result["refused"] == 0
    if settings is not None:
        assert result["parked"] > 0  # the caps were reached: the contact waited
