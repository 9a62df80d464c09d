"""The rules of a LAN announcement (enclave.node.nearby): forged and malformed TXT
records, floods over the table's cap and the rate limit, our own fingerprint. Each
refused announcement leaves the table as it was and logs its reason."""

from __future__ import annotations

import logging

import pytest

from enclave.node import nearby as nb

OWN = "0" * 64
FP = "ab" * 32
LOGGER = "enclave.node.nearby"


def txt(**fields) -> dict:
    props = {b"v": b"1", b"fp": FP.encode()}
    for key, value in fields.items():
        if value is None:
            props.pop(key.encode(), None)
        else:
            props[key.encode()] = value if isinstance(value, bytes) else str(value).encode()
    return props


def table() -> nb.NearbyTable:
    return nb.NearbyTable(OWN, cap=4, ttl=60.0)


def test_a_good_announcement_is_listed_with_its_address_and_invites():
    t = table()
    assert t.observe("x._enclave._tcp.local.", txt(inv="7,42"), ["10.0.0.5"], 7000, 100.0) == FP
    [entry] = t.listing(101.0, {})
    assert entry.fingerprint == FP and entry.addresses == ("10.0.0.5:7000",)
    assert entry.invites == (7, 42) and entry.contact is None and not entry.known
    assert t.with_invite(42, 101.0) == ["10.0.0.5:7000"] and t.with_invite(8, 101.0) == []


def test_unknown_keys_are_ignored():
    t = table()
    assert t.observe("x", txt(future=b"yes", name=b"mallory"), ["10.0.0.5"], 7000, 1.0) == FP


@pytest.mark.parametrize(
    "props, port, hosts, reason",
    [
        (txt(fp=None), 7000, ["10.0.0.5"], "fingerprint missing"),
        (txt(fp=FP[:63]), 7000, ["10.0.0.5"], "not 64 lower-case hex"),
        (txt(fp=FP + "a"), 7000, ["10.0.0.5"], "not 64 lower-case hex"),
        (txt(fp=FP.upper()), 7000, ["10.0.0.5"], "not 64 lower-case hex"),
        (txt(fp="zz" * 32), 7000, ["10.0.0.5"], "not 64 lower-case hex"),
        (txt(fp=FP + "\n"), 7000, ["10.0.0.5"], "not 64 lower-case hex"),
        (txt(v=None), 7000, ["10.0.0.5"], "version missing"),
        (txt(v=b"2"), 7000, ["10.0.0.5"], "version '2'"),
        (txt(v=b""), 7000, ["10.0.0.5"], "version"),
        (txt(inv=b"0"), 7000, ["10.0.0.5"], "not numbers 1-99"),
        (txt(inv=b"100"), 7000, ["10.0.0.5"], "not numbers 1-99"),
        (txt(inv=b"7,,8"), 7000, ["10.0.0.5"], "not numbers 1-99"),
        (txt(inv=b"07"), 7000, ["10.0.0.5"], "not numbers 1-99"),
        (txt(inv=b"7,7"), 7000, ["10.0.0.5"], "listed twice"),
        (
            txt(inv=",".join(str(i) for i in range(1, 18)).encode()),
            7000,
            ["10.0.0.5"],
            "17 nameplates",
        ),
        (txt(big=b"x" * 256), 7000, ["10.0.0.5"], "256 bytes"),
        (
            {**txt(), **{f"k{i}".encode(): b"" for i in range(20)}},
            7000,
            ["10.0.0.5"],
            "keys (at most 16)",
        ),
        (
            {**txt(), **{f"k{i}".encode(): b"y" * 200 for i in range(6)}},
            7000,
            ["10.0.0.5"],
            "bytes (at most 1024)",
        ),
        (txt(), 0, ["10.0.0.5"], "port 0"),
        (txt(), 70000, ["10.0.0.5"], "port 70000"),
        (txt(), None, ["10.0.0.5"], "port None"),
        (txt(), 7000, [], "no usable address"),
        (txt(), 7000, ["127.0.0.1", "0.0.0.0", "224.0.0.251", "nonsense"], "no usable address"),
        (txt(fp=OWN), 7000, ["10.0.0.5"], "our own fingerprint"),
        ("not a dict", 7000, ["10.0.0.5"], "not a key/value list"),
    ],
)
def test_a_bad_announcement_is_refused_with_a_logged_reason(props, port, hosts, reason, caplog):
    t = table()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert t.observe("evil._enclave._tcp.local.", props, hosts, port, 1.0) is None
    assert t.entries == {} and t.listing(1.0, {}) == []
    logged = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(logged) == 1 and "refused" in logged[0] and reason in logged[0], logged
    assert sum(t.refused.values()) == 1


def test_a_flood_of_fingerprints_keeps_the_table_at_its_cap():
    t = table()
    fps = [f"{i:064x}" for i in range(1, 11)]
    for i, fp in enumerate(fps):
        t.observe(f"s{i}", txt(fp=fp), ["10.0.0.5"], 7000, float(i))
    assert len(t.entries) == 4
    assert [e.fingerprint for e in t.listing(10.0, {})] == fps[:-5:-1]  # the newest four


def test_entries_expire_and_a_goodbye_removes_one():
    t = table()
    t.observe("a", txt(), ["10.0.0.5"], 7000, 0.0)
    t.observe("b", txt(fp="cd" * 32), ["10.0.0.6"], 7000, 50.0)
    assert [e.fingerprint for e in t.listing(70.0, {})] == ["cd" * 32]  # "a" is 70 s old
    t.forget_service("b")
    assert t.listing(70.0, {}) == []


def test_one_fingerprint_keeps_a_bounded_list_of_addresses_newest_first():
    t = table()
    for i in range(12):
        t.observe(f"s{i}", txt(), [f"10.0.0.{i + 1}"], 7000, float(i))
    [entry] = t.listing(12.0, {})
    assert len(entry.addresses) == nb.MAX_ADDRESSES and entry.addresses[0] == "10.0.0.12:7000"


def test_a_contact_is_listed_by_its_name():
    t = table()
    t.observe("a", txt(), ["10.0.0.5", "fe80::1"], 7000, 0.0)
    [entry] = t.listing(1.0, {FP: "bob"})
    assert entry.contact == "bob" and entry.known
    assert entry.addresses == ("10.0.0.5:7000", "[fe80::1]:7000")


def test_the_rate_limit_holds_one_source_and_all_of_them():
    limit = nb.RateLimit(per_source=1.0, burst=3.0, total=10.0, total_burst=20.0)
    assert [limit.allow("a", 0.0) for _ in range(5)] == [True, True, True, False, False]
    assert limit.allow("a", 1.0)  # a second later one more
    allowed = sum(limit.allow(f"s{i}", 1.0) for i in range(100))
    assert allowed == 19  # the total bucket, refilled to its burst (20), less the one "a" took
    assert not limit.allow("fresh", 1.0) and limit.allow("fresh", 2.0)


def test_the_rate_limit_tracks_a_bounded_number_of_sources():
    limit = nb.RateLimit(total=1e9, total_burst=1e9, sources=8)
    for i in range(1000):
        limit.allow(f"s{i}", 0.0)
    assert len(limit._buckets) == 8


def test_invites_are_written_as_they_are_read():
    assert nb.invites_txt([42, 7, 7]) == b"7,42"
    assert nb.parse_invites(nb.invites_txt([42, 7])) == (7, 42)
    with pytest.raises(ValueError):
        nb.invites_txt([100])
