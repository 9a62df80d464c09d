"""A group's disappearing-messages timer as a record of its membership log (TIMER,
kind 7; docs/PROTOCOL.md "Groups: the membership log"): an admin sets it, the log
says which timer holds at every epoch, and a member, a stranger or a bad value is
refused with the log unchanged."""

from dataclasses import replace

import msgpack
import pytest
from test_group_log import GID, T0, fp, group, ids, refused, unsigned  # noqa: F401

from enclave.errors import PeerError, UsageError
from enclave.protocol import group_log as gl
from enclave.protocol.group_log import TIMER, GroupLog, decode_record, encode_record, sign_record
from enclave.protocol.messages import MAX_TIMER_S, MIN_TIMER_S

DAY = 86400


def test_an_admin_sets_the_timer_and_each_epoch_keeps_its_own(ids):  # noqa: F811
    log = group(ids, "bob", "carol")
    a = ids["alice"]
    assert log.timer_s == 0 and log.timer_at(0) == 0
    log.apply(log.set_timer(a, DAY, T0 + 1))
    log.apply(log.rename(a, "family", T0 + 2))
    log.apply(log.set_timer(a, 0, T0 + 3))
    assert [log.timer_at(e) for e in range(4)] == [0, DAY, DAY, 0]
    assert log.timer_s == 0 and log.timer_at(99) == 0 and log.timer_at(-1) == 0
    again = GroupLog.load([decode_record(e) for e in log.encoded])
    assert [again.timer_at(e) for e in range(4)] == [0, DAY, DAY, 0]
    assert gl.KIND_NAMES[log.records[1].kind] == "timer"


@pytest.mark.parametrize("seconds", [0, MIN_TIMER_S, 3600, MAX_TIMER_S])
def test_bounds_accepted(ids, seconds):  # noqa: F811
    log = group(ids, "bob")
    log.apply(log.set_timer(ids["alice"], seconds or MIN_TIMER_S, T0))
    if seconds == 0:
        log.apply(log.set_timer(ids["alice"], 0, T0 + 1))
    assert log.timer_s == seconds


@pytest.mark.parametrize(
    "seconds", [1, MIN_TIMER_S - 1, MAX_TIMER_S + 1, 2**63, -1, True, 3.0, "1d"]
)
def test_our_own_absurd_timer_is_a_usage_error(ids, seconds):  # noqa: F811
    log = group(ids, "bob")
    with pytest.raises(UsageError):
        log.set_timer(ids["alice"], seconds, T0)


@pytest.mark.parametrize("seconds", [1, MIN_TIMER_S - 1, MAX_TIMER_S + 1, 2**63, True])
def test_a_hostile_admins_absurd_timer_is_refused_by_the_codec(ids, seconds):  # noqa: F811
    log = group(ids, "bob")
    r = unsigned(log, TIMER, (seconds,), author=fp(ids["alice"]))
    fields = [r.kind, r.group_id, r.epoch, r.prev, r.author, r.time_ms, [seconds]]
    signature = ids["alice"].sign_v2(gl.SIGN_LABEL + msgpack.packb(fields, use_bin_type=True))
    data = msgpack.packb(fields + [signature], use_bin_type=True)
    with pytest.raises(PeerError) as err:
        decode_record(data)
    assert err.value.reason == "bad_group_record"
    refused(log, replace(r, signature=signature), "bad_group_record")
    assert log.timer_s == 0


def test_a_member_a_stranger_and_a_repeat_are_refused(ids):  # noqa: F811
    log = group(ids, "bob")
    refused(log, log.set_timer(ids["bob"], DAY, T0), "group_not_admin")
    refused(log, log.set_timer(ids["mallory"], DAY, T0), "group_not_member")
    refused(log, log.set_timer(ids["alice"], 0, T0), "group_no_change")
    log.apply(log.set_timer(ids["alice"], DAY, T0))
    refused(log, log.set_timer(ids["alice"], DAY, T0 + 1), "group_no_change")
    assert log.timer_s == DAY


def test_a_promoted_member_may_set_it_and_a_removed_admin_may_not(ids):  # noqa: F811
    log = group(ids, "bob", "carol")
    a, b = ids["alice"], ids["bob"]
    log.apply(log.promote(a, [fp(b)], T0 + 1))
    log.apply(log.set_timer(b, 3600, T0 + 2))
    log.apply(log.remove(b, [fp(a)], T0 + 3))
    refused(log, log.set_timer(a, DAY, T0 + 4), "group_not_member")
    assert log.timer_s == 3600


def test_a_timer_record_round_trips_and_forks_like_any(ids):  # noqa: F811
    log = group(ids, "bob")
    record = log.set_timer(ids["alice"], DAY, T0)
    assert decode_record(encode_record(record)) == record
    other = log.set_timer(ids["alice"], 3600, T0)
    log.apply(record)
    refused(log, other, "group_fork")
    refused(log, record, "group_duplicate")
    resigned = sign_record(ids["alice"], replace(other, signature=b""))
    refused(log, resigned, "group_fork")
