"""The group membership log (enclave/protocol/group_log.py; docs/PROTOCOL.md, "Groups:
the membership log"): the codec's refusals, every check of ``apply``, hostile members
as well as strangers, and ``load`` of whole chains.

Keys are RSA-2048 (the smallest Enclave accepts), made once for the module.
"""

from dataclasses import replace

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st
from support.fuzzing import fuzz

from enclave.errors import PeerError, UsageError
from enclave.protocol import group_log as gl
from enclave.protocol.crypto import Identity, spki_pem
from enclave.protocol.group_log import (
    ADD,
    CREATE,
    LEAVE,
    MAX_LIST,
    PROMOTE,
    REMOVE,
    RENAME,
    ZERO_HASH,
    Entry,
    GroupLog,
    Record,
    decode_record,
    encode_record,
    entry,
    record_hash,
    sign_record,
)

GID = bytes(range(16))
NAMES = ("alice", "bob", "carol", "dave", "erin", "mallory")
T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def ids() -> dict[str, Identity]:
    return {
        n: Identity(rsa.generate_private_key(public_exponent=65537, key_size=2048)) for n in NAMES
    }


def ent(identity: Identity, name: str = "", hints=("198.51.100.7:9000",)) -> Entry:
    return entry(spki_pem(identity.peer_key.key), name or "m", hints)


def fp(identity: Identity) -> bytes:
    return identity.fingerprint


def group(ids, *names, max_members=gl.DEFAULT_MAX_MEMBERS) -> GroupLog:
    """A group alice created with ``names`` (alice is always in it, as admin)."""
    members = [ent(ids["alice"], "alice")] + [ent(ids[n], n) for n in names]
    return GroupLog.create(ids["alice"], GID, "friends", members, T0, max_members)


def refused(log: GroupLog, record: Record, reason: str) -> None:
    """``apply`` refuses ``record`` with ``reason`` and the log does not change."""
    before = (log.epoch, log.head, dict(log.members), log.name)
    with pytest.raises(PeerError) as err:
        log.apply(record)
    assert err.value.reason == reason, err.value
    assert (log.epoch, log.head, dict(log.members), log.name) == before


def bad_bytes(data: bytes, detail: str = "") -> None:
    with pytest.raises(PeerError) as err:
        decode_record(data)
    assert err.value.reason == "bad_group_record"
    assert detail in err.value.detail


def unsigned(log: GroupLog, kind: int, body: tuple, **changes) -> Record:
    r = Record(kind, log.group_id, log.epoch + 1, log.head, b"", T0 + 1, body)
    return replace(r, **changes)


# --- round trips ---------------------------------------------------------------------------


def test_create_makes_the_creator_the_one_admin(ids):
    log = group(ids, "bob", "carol")
    assert log.epoch == 0 and log.name == "friends" and log.group_id == GID
    assert log.is_admin(fp(ids["alice"])) and not log.is_admin(fp(ids["bob"]))
    assert log.is_member(fp(ids["carol"])) and not log.is_member(fp(ids["dave"]))
    assert log.head == record_hash(log.records[0])
    assert log.members[fp(ids["bob"])].hints == ("198.51.100.7:9000",)


def every_kind(ids) -> GroupLog:
    log = group(ids, "bob", "carol")
    a = ids["alice"]
    log.apply(log.add(a, [ent(ids["dave"], "dave", ()), ent(ids["erin"], "erin")], T0 + 1))
    log.apply(log.promote(a, [fp(ids["bob"])], T0 + 2))
    log.apply(log.remove(ids["bob"], [fp(ids["carol"])], T0 + 3))
    log.apply(log.rename(a, "family", T0 + 4))
    log.apply(log.leave(ids["dave"], T0 + 5))
    log.apply(log.leave(a, T0 + 6))  # bob is still an admin
    return log


def test_every_kind_applies_and_round_trips(ids):
    log = every_kind(ids)
    assert log.epoch == 6 and log.name == "family"
    assert set(log.members) == {fp(ids["bob"]), fp(ids["erin"])}
    assert log.is_admin(fp(ids["bob"])) and not log.is_admin(fp(ids["erin"]))
    for r in log.records:
        data = encode_record(r)
        assert decode_record(data) == r
        assert record_hash(decode_record(data)) == record_hash(r)
    again = GroupLog.load([decode_record(encode_record(r)) for r in log.records])
    assert (again.epoch, again.head, again.members, again.name) == (
        log.epoch,
        log.head,
        log.members,
        log.name,
    )


def test_the_chain_links_each_record_to_the_last(ids):
    log = every_kind(ids)
    assert log.records[0].prev == ZERO_HASH
    for before, after in zip(log.records, log.records[1:], strict=False):
        assert after.prev == record_hash(before) and after.epoch == before.epoch + 1


def test_the_last_member_may_leave_and_the_group_is_over(ids):
    log = group(ids)
    log.apply(log.leave(ids["alice"], T0 + 1))
    assert log.members == {}
    refused(log, log.rename(ids["alice"], "x", T0 + 2), "group_not_member")


# --- the codec -------------------------------------------------------------------------------


def test_our_own_malformed_records_are_usage_errors(ids):
    log = group(ids, "bob")
    a = ids["alice"]
    with pytest.raises(UsageError):
        log.rename(a, " padded", T0)
    with pytest.raises(UsageError):
        log.add(a, [], T0)
    with pytest.raises(UsageError):
        log.remove(a, [fp(ids["bob"])] * 2, T0)
    with pytest.raises(UsageError):
        GroupLog.create(a, GID, "g", [ent(ids["bob"])], T0)  # without the creator
    with pytest.raises(UsageError):
        GroupLog.create(a, b"short", "g", [ent(a)], T0)
    with pytest.raises(UsageError):
        GroupLog(max_members=0)


@pytest.mark.parametrize(
    "name",
    ["", " a", "a ", "x" * 65, "é" * 33, "a\x00b", "a\u202eb", "a\u200bb", "a\u2028b", "\x1b[31m"],
)
def test_names_the_codec_refuses(ids, name):
    assert gl.name_problem(name) is not None
    log = group(ids)
    r = replace(log.records[0], epoch=1, kind=RENAME, prev=log.head, body=(name,))
    good = msgpack.packb(gl._unsigned_fields(replace(r, body=("ok",))) + [b"s"])
    bad = good.replace(msgpack.packb("ok"), msgpack.packb(name))
    bad_bytes(bad, gl.name_problem(name))


def test_names_the_codec_accepts():
    for name in ("a", "Zoë", "x" * 64, "é" * 32, "👩‍💻 team", "名前"):
        assert gl.name_problem(name) is None, name


@pytest.mark.parametrize(
    "hints",
    [("host",), ("host:0",), ("host:65536",), (":80",), ("a b:80",), ("hö:80",),
     ("h:1",) * 5, ("h:" + "1" * 300,)],
)  # fmt: skip
def test_hints_the_codec_refuses(ids, hints):
    e = ent(ids["bob"], "bob", ())._replace(hints=hints)
    assert gl._entry_problem(e) is not None


def test_hints_the_codec_accepts(ids):
    e = ent(ids["bob"], "bob", ("[::1]:9000", "example.org:1", "10.0.0.1:65535", "h:80"))
    assert gl._entry_problem(e) is None


def test_a_member_whose_fingerprint_is_not_the_keys(ids):
    e = ent(ids["bob"], "bob")
    assert "fingerprint" in gl._entry_problem(e._replace(fp=fp(ids["carol"])))
    lax = e.key_pem.replace(b"\n", b"\r\n")  # the same key, another spelling
    assert "canonical" in gl._entry_problem(entry(lax, "bob"))
    assert "RSA" in gl._entry_problem(entry(b"-----BEGIN PUBLIC KEY-----\nAAAA\n", "bob"))


def test_a_small_rsa_key_is_refused(ids):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    assert "RSA" in gl._entry_problem(entry(spki_pem(weak), "weak"))


def wire(r: Record) -> list:
    return gl._unsigned_fields(r) + [r.signature]


def test_structural_refusals(ids):
    log = every_kind(ids)
    good = log.records[1]
    packb = msgpack.packb
    bad_bytes(packb(wire(good)) + b"\x00", "extra data")  # trailing bytes
    bad_bytes(packb(wire(good))[:-5], "")  # truncated
    bad_bytes(packb({"a": 1}), "map")
    bad_bytes(packb([msgpack.ExtType(1, b"x")]), "ext")
    bad_bytes(packb(wire(good)[:7]), "array of 8")
    bad_bytes(packb([9] + wire(good)[1:]), "unknown kind")
    bad_bytes(packb([True] + wire(good)[1:]), "unknown kind")
    bad_bytes(packb(wire(replace(good, epoch=0))), "CREATE is epoch 0")
    bad_bytes(packb(wire(replace(log.records[0], epoch=3))), "CREATE is epoch 0")
    bad_bytes(packb(wire(replace(log.records[0], prev=b"\x01" * 32))), "CREATE is epoch 0")
    bad_bytes(packb(wire(replace(good, group_id=b"x" * 15))), "group id")
    bad_bytes(packb(wire(replace(good, signature=b""))), "signature")
    bad_bytes(packb(wire(good)[:6] + [[], good.signature]), "body arity")
    bad_bytes(packb(wire(log.records[3])[:6] + [[[]], b"s"]), "list empty")
    bad_bytes(b"\xc1", "")  # a byte msgpack never uses
    bad_bytes(b"\x91" * 100_000 + b"\x90", "")  # nested arrays, deeper than any record
    bad_bytes(bytes(gl.MAX_RECORD_BYTES + 1), "bytes")


def test_non_canonical_encodings_are_refused(ids):
    """One record, one byte string: otherwise one record would have many hashes."""
    log = group(ids)
    data = encode_record(log.records[0])
    assert data[0] == 0x98 and data[1] == CREATE  # fixarray of 8, positive fixint kind
    wide = b"\x98\xcc" + bytes([CREATE]) + data[2:]  # the kind as uint8
    bad_bytes(wide, "canonical")
    as_array16 = b"\xdc\x00\x08" + data[1:]
    bad_bytes(as_array16, "canonical")


def test_list_bounds_at_the_cap(ids):
    log = group(ids)
    fps = tuple(bytes([i % 256, i // 256]) * 16 for i in range(MAX_LIST))
    at_cap = sign_record(ids["alice"], unsigned(log, REMOVE, (fps,)))
    assert decode_record(encode_record(at_cap)) == at_cap
    refused(log, at_cap, "group_not_a_member")
    over = msgpack.packb(wire(at_cap)[:6] + [[list(fps) + [b"z" * 32]], at_cap.signature])
    bad_bytes(over, "array")  # msgpack stops reading at MAX_LIST, before any key is parsed
    with pytest.raises(UsageError):
        sign_record(ids["alice"], unsigned(log, REMOVE, (fps + (b"z" * 32,),)))


@fuzz(300)
@given(data=st.data())
def test_mutated_records_never_crash_and_never_apply(ids, data):
    """Truncated, grown or bit-flipped encodings: the codec refuses, or apply does;
    nothing else escapes, and no altered record is accepted."""
    log = group(ids, "bob")
    record = log.add(ids["alice"], [ent(ids["carol"], "carol")], T0 + 1)
    good = encode_record(record)
    how = data.draw(st.sampled_from(["flip", "cut", "grow"]))
    if how == "flip":
        i = data.draw(st.integers(0, len(good) - 1))
        bit = data.draw(st.integers(0, 7))
        mutated = good[:i] + bytes([good[i] ^ (1 << bit)]) + good[i + 1 :]
    elif how == "cut":
        mutated = good[: data.draw(st.integers(0, len(good) - 1))]
    else:
        mutated = good + data.draw(st.binary(min_size=1, max_size=8))
    try:
        log.apply(decode_record(mutated))
    except PeerError:
        return
    raise AssertionError(f"a mutated record was accepted ({how})")


@fuzz(300)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_peer_error(data):
    try:
        decode_record(data)
    except PeerError as err:
        assert err.reason == "bad_group_record"


# --- apply: every refusal ----------------------------------------------------------------


def test_wrong_group(ids):
    log = group(ids, "bob")
    r = sign_record(ids["alice"], unsigned(log, RENAME, ("x",), group_id=b"\xff" * 16))
    refused(log, r, "group_wrong_group")


def test_gap_and_bad_prev(ids):
    log = group(ids, "bob")
    a = ids["alice"]
    refused(log, sign_record(a, unsigned(log, RENAME, ("x",), epoch=2)), "group_gap")
    refused(log, sign_record(a, unsigned(log, RENAME, ("x",), prev=b"\x01" * 32)), "group_bad_prev")
    empty = GroupLog()
    refused(empty, log.rename(a, "x", T0), "group_gap")  # nothing before its CREATE
    with pytest.raises(PeerError) as err:
        GroupLog.load([])
    assert err.value.reason == "group_empty"


def test_duplicate_and_fork_are_told_apart(ids):
    log = group(ids, "bob")
    a = ids["alice"]
    first = log.rename(a, "one", T0 + 1)
    log.apply(first)
    log.apply(log.rename(a, "two", T0 + 2))
    refused(log, first, "group_duplicate")
    refused(log, sign_record(a, first), "group_duplicate")  # re-signed: the same content
    refused(log, log.records[0], "group_duplicate")
    fork = sign_record(a, replace(first, body=("other",)))
    refused(log, fork, "group_fork")  # an admin's second record for epoch 1
    refused(log, sign_record(a, replace(first, time_ms=T0 + 9)), "group_fork")
    second_create = GroupLog.create(a, GID, "friends", [ent(a, "alice")], T0).records[0]
    refused(log, second_create, "group_fork")


def test_fork_at_the_head_epoch(ids):
    """Two records for the next epoch: whichever is applied first wins; the other is a fork."""
    log = group(ids, "bob")
    one = log.rename(ids["alice"], "one", T0 + 1)
    two = log.rename(ids["alice"], "two", T0 + 1)
    log.apply(two)
    refused(log, one, "group_fork")
    assert log.name == "two"


def test_a_stranger_is_not_a_member(ids):
    log = group(ids, "bob")
    refused(log, log.rename(ids["mallory"], "pwned", T0), "group_not_member")
    refused(log, log.leave(ids["mallory"], T0), "group_not_member")


def test_signatures(ids):
    log = group(ids, "bob")
    good = log.rename(ids["alice"], "x", T0)
    sig = bytearray(good.signature)
    sig[10] ^= 1
    refused(log, replace(good, signature=bytes(sig)), "group_bad_signature")
    refused(log, replace(good, signature=good.signature[:-1]), "group_bad_signature")
    refused(log, replace(good, signature=good.signature + b"\x00"), "group_bad_signature")
    refused(log, replace(good, signature=bytes(len(good.signature))), "group_bad_signature")
    refused(log, replace(good, time_ms=good.time_ms + 1), "group_bad_signature")
    refused(log, replace(good, body=("y",)), "group_bad_signature")


def test_a_bad_create_signature(ids):
    r = GroupLog.create(ids["alice"], GID, "g", [ent(ids["alice"])], T0).records[0]
    refused(GroupLog(), replace(r, body=("h", r.body[1])), "group_bad_signature")
    # A CREATE whose author is not in its member list has no key to check it with.
    stray = sign_record(ids["mallory"], replace(r, signature=b""))
    refused(GroupLog(), stray, "group_not_member")


def test_a_member_is_not_an_admin(ids):
    log = group(ids, "bob", "carol")
    b = ids["bob"]
    refused(log, log.add(b, [ent(ids["mallory"], "mallory")], T0), "group_not_admin")
    refused(log, log.remove(b, [fp(ids["carol"])], T0), "group_not_admin")
    refused(log, log.promote(b, [fp(b)], T0), "group_not_admin")
    refused(log, log.rename(b, "bob's now", T0), "group_not_admin")


def test_kind_rules(ids):
    log = group(ids, "bob", max_members=4)
    a = ids["alice"]
    refused(log, log.add(a, [ent(ids["bob"], "bob")], T0), "group_already_member")
    refused(log, log.remove(a, [fp(ids["carol"])], T0), "group_not_a_member")
    refused(log, log.remove(a, [fp(a)], T0), "group_self_remove")
    refused(log, log.promote(a, [fp(ids["carol"])], T0), "group_not_a_member")
    refused(log, log.promote(a, [fp(a)], T0), "group_already_admin")
    refused(log, log.rename(a, "friends", T0), "group_no_change")
    refused(log, log.leave(a, T0), "group_last_admin")


def test_the_member_cap_at_its_boundary(ids):
    log = group(ids, "bob", max_members=4)
    a = ids["alice"]
    three = [ent(ids[n], n) for n in ("carol", "dave", "erin")]
    refused(log, log.add(a, three, T0), "group_full")
    log.apply(log.add(a, three[:2], T0))  # 4 of 4
    refused(log, log.add(a, three[2:], T0), "group_full")
    members = [ent(ids[n], n) for n in NAMES]
    with pytest.raises(PeerError) as err:
        GroupLog.create(a, GID, "g", members, T0, max_members=5)
    assert err.value.reason == "group_full"
    assert GroupLog.create(a, GID, "g", members, T0, max_members=6).epoch == 0


def test_an_admin_may_remove_another_admin(ids):
    log = group(ids, "bob")
    a, b = ids["alice"], ids["bob"]
    log.apply(log.promote(a, [fp(b)], T0))
    log.apply(log.remove(b, [fp(a)], T0))
    assert set(log.members) == {fp(b)} and log.is_admin(fp(b))


# --- hostile members ----------------------------------------------------------------------


def test_a_removed_member_cannot_sign_after_removal(ids):
    log = group(ids, "bob", "carol")
    a, c = ids["alice"], ids["carol"]
    log.apply(log.promote(a, [fp(c)], T0))
    log.apply(log.remove(a, [fp(c)], T0))
    refused(log, log.add(c, [ent(ids["mallory"], "m")], T0), "group_not_member")
    refused(log, log.leave(c, T0), "group_not_member")


def test_a_member_replays_an_old_record(ids):
    log = group(ids, "bob", "carol")
    a = ids["alice"]
    added = log.add(a, [ent(ids["dave"], "dave")], T0)
    log.apply(added)
    log.apply(log.remove(a, [fp(ids["dave"])], T0))
    refused(log, added, "group_duplicate")  # dave does not come back
    assert not log.is_member(fp(ids["dave"]))
    # Re-numbered onto the head, the old record's signature no longer holds.
    moved = replace(added, epoch=log.epoch + 1, prev=log.head)
    refused(log, moved, "group_bad_signature")


def test_a_member_forges_the_author_field(ids):
    log = group(ids, "bob")
    b = ids["bob"]
    mine = log.add(b, [ent(ids["mallory"], "mallory")], T0)
    forged = replace(mine, author=fp(ids["alice"]))  # bob's signature, alice's name
    refused(log, forged, "group_bad_signature")
    # sign_record always names the signer as author, so the forgery must be by hand:
    by_hand = replace(forged, signature=b.sign_v2(gl.signed_bytes(forged)))
    refused(log, by_hand, "group_bad_signature")


def test_bodies_swapped_between_two_valid_records(ids):
    log = group(ids, "bob", "carol")
    a = ids["alice"]
    one = log.promote(a, [fp(ids["bob"])], T0)
    two = log.remove(a, [fp(ids["carol"])], T0)
    refused(log, replace(one, kind=REMOVE, body=two.body), "group_bad_signature")
    refused(log, replace(two, signature=one.signature), "group_bad_signature")


def test_a_member_may_leave_but_not_make_another_leave(ids):
    log = group(ids, "bob", "carol")
    theirs = log.leave(ids["bob"], T0)
    refused(log, replace(theirs, author=fp(ids["carol"])), "group_bad_signature")
    log.apply(theirs)
    assert not log.is_member(fp(ids["bob"]))


# --- load ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [CREATE, ADD, REMOVE, LEAVE, PROMOTE, RENAME])
def test_load_a_chain_ending_in_each_kind(ids, kind):
    log = every_kind(ids)
    upto = max(i for i, r in enumerate(log.records) if r.kind == kind)
    again = GroupLog.load(log.records[: upto + 1])
    assert again.epoch == upto and again.head == record_hash(log.records[upto])


@pytest.mark.parametrize("bad_at", range(7))
def test_load_refuses_a_chain_with_one_bad_link(ids, bad_at):
    records = list(every_kind(ids).records)
    r = records[bad_at]
    records[bad_at] = replace(r, time_ms=r.time_ms + 1)  # valid shape, broken signature
    with pytest.raises(PeerError) as err:
        GroupLog.load(records)
    assert err.value.reason == "group_bad_signature"


def test_load_refuses_reordered_missing_and_foreign_links(ids):
    records = list(every_kind(ids).records)
    for chain, reason in [
        (records[1:], "group_gap"),
        (records[:2] + records[3:], "group_gap"),
        (records[:1] + records[2:3] + records[1:2], "group_gap"),
        (records + records[-1:], "group_duplicate"),
    ]:
        with pytest.raises(PeerError) as err:
            GroupLog.load(chain)
        assert err.value.reason == reason
    other = GroupLog.create(ids["alice"], b"\x07" * 16, "g", [ent(ids["alice"])], T0)
    with pytest.raises(PeerError) as err:
        GroupLog.load(records[:1] + [other.add(ids["alice"], [ent(ids["bob"])], T0)])
    assert err.value.reason == "group_wrong_group"


# --- membership by epoch: what posts are judged against ------------------------------------


def test_membership_by_epoch_follows_adds_removals_and_rejoins(ids):
    log = group(ids, "bob")  # epoch 0: alice, bob
    carol = fp(ids["carol"])
    log.apply(log.add(ids["alice"], [ent(ids["carol"], "carol")], T0))  # 1
    log.apply(log.remove(ids["alice"], [carol], T0))  # 2
    log.apply(log.rename(ids["alice"], "mates", T0))  # 3
    log.apply(log.add(ids["alice"], [ent(ids["carol"], "carol")], T0))  # 4
    assert [log.member_at(carol, e) for e in range(6)] == [False, True, False, False, True, False]
    assert log.member_at(fp(ids["bob"]), 0) and log.member_at(fp(ids["bob"]), 4)
    assert not log.member_at(fp(ids["dave"]), 0)
    assert log.left_at(carol) is None and log.left_at(fp(ids["dave"])) is None
    log.apply(log.leave(ids["bob"], T0))  # 5
    assert log.left_at(fp(ids["bob"])) == 5
    assert log.member_at(fp(ids["bob"]), 4) and not log.member_at(fp(ids["bob"]), 5)


def test_encoded_records_are_what_load_takes_back(ids):
    log = group(ids, "bob", "carol")
    log.apply(log.promote(ids["alice"], [fp(ids["bob"])], T0))
    again = GroupLog.load([decode_record(b) for b in log.encoded])
    assert again.encoded == log.encoded and again.head == log.head
    assert [record_hash(decode_record(b)) for b in log.encoded][-1] == log.head
