"""The node's fast builders of its per-message events (enclave/node/events.py) make
exactly what the dataclasses' own constructors make."""

import dataclasses
import inspect

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.node.events import (
    DeliveryChanged,
    MessageReceived,
    delivery_changed,
    message_received,
)

BUILDERS = [(MessageReceived, message_received), (DeliveryChanged, delivery_changed)]
maybe_text = st.none() | st.text(max_size=20)
maybe_int = st.none() | st.integers(min_value=0, max_value=1 << 63)


@pytest.mark.parametrize(("cls", "build"), BUILDERS)
def test_a_builder_takes_the_fields_of_its_class_in_order_with_their_defaults(cls, build):
    """A field added to the class without its builder (or in another place) fails here."""
    params = inspect.signature(build).parameters
    fields = dataclasses.fields(cls)
    assert list(params) == [f.name for f in fields]
    for f in fields:
        assert params[f.name].default == (
            inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        )


@given(
    peer=st.text(max_size=64),
    mid=st.binary(max_size=36),
    body=st.text(max_size=50),
    created=maybe_int,
    legacy=st.booleans(),
    reply=st.none() | st.binary(min_size=16, max_size=16),
)
def test_message_received_equals_the_constructor(peer, mid, body, created, legacy, reply):
    fast = message_received(peer, mid, body, created, legacy, reply)
    slow = MessageReceived(peer, mid, body, created, legacy, reply)
    assert type(fast) is MessageReceived
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert message_received(peer, mid, body, created) == MessageReceived(peer, mid, body, created)


@given(
    peer=st.text(max_size=64),
    rowid=st.integers(min_value=1, max_value=1 << 62),
    mid=st.binary(max_size=36),
    state=st.sampled_from(["queued", "sent", "delivered", "failed"]),
    reason=maybe_text,
    body=maybe_text,
    created=maybe_int,
    group=maybe_text,
)
def test_delivery_changed_equals_the_constructor(
    peer, rowid, mid, state, reason, body, created, group
):
    fast = delivery_changed(peer, rowid, mid, state, reason, body, created, group)
    slow = DeliveryChanged(peer, rowid, mid, state, reason, body, created, group)
    assert type(fast) is DeliveryChanged
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert delivery_changed(peer, rowid, mid, state, group=group) == DeliveryChanged(
        peer, rowid, mid, state, group=group
    )


@pytest.mark.parametrize(("cls", "build"), BUILDERS)
def test_what_a_builder_makes_is_frozen_as_the_class_makes_it(cls, build):
    args = ("ab" * 32, b"\x01" * 16, "hi", 5) if cls is MessageReceived else ("ab", 1, b"i", "sent")
    ev = build(*args)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.peer = "someone else"
    assert not hasattr(ev, "__dict__")
    assert dataclasses.replace(ev, peer="x") == cls("x", *args[1:])
