"""Known-answer vectors pin the v2 key schedule (PROTOCOL.md b.3, row F6)."""

import json
from pathlib import Path

import pytest

from enclave.protocol import handshake as hs
from enclave.protocol import schedule

VECTORS = json.loads((Path(__file__).parent / "data" / "schedule_kat.json").read_text())


def _b(v: dict, key: str) -> bytes:
    return bytes.fromhex(v[key])


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["dh"][:8])
def test_known_answers(v):
    prk = schedule.handshake_prk(_b(v, "dh"), _b(v, "k_i"), _b(v, "k_r"))
    assert prk == _b(v, "prk")
    th2 = hs.transcript(_b(v, "hs1"), _b(v, "hs2")[:-32])
    th3 = hs.transcript(_b(v, "hs1"), _b(v, "hs2"))
    assert (th2, th3) == (_b(v, "th2"), _b(v, "th3"))
    assert schedule.finished_key_r(prk, th2) == _b(v, "fk_r")
    assert schedule.finished_key_i(prk, th3) == _b(v, "fk_i")
    i2r, r2i = schedule.traffic_secrets(prk, th3)
    assert (i2r, r2i) == (_b(v, "i2r"), _b(v, "r2i"))
    assert schedule.session_id(prk, th3) == _b(v, "session_id")
    assert schedule.traffic_key(i2r) == _b(v, "i2r_key")
    assert schedule.traffic_iv(i2r) == _b(v, "i2r_iv")
    assert schedule.traffic_key(r2i) == _b(v, "r2i_key")
    assert schedule.traffic_iv(r2i) == _b(v, "r2i_iv")
    assert schedule.next_secret(i2r) == _b(v, "i2r_next")


def test_directions_differ():
    v = VECTORS[0]
    assert v["i2r_key"] != v["r2i_key"] and v["i2r_iv"] != v["r2i_iv"]


@pytest.mark.parametrize("field", ["dh", "k_i", "k_r", "hs1", "hs2"])
def test_every_input_changes_every_key(field):
    v = VECTORS[0]
    inputs = {k: _b(v, k) for k in ("dh", "k_i", "k_r", "hs1", "hs2")}

    def keys(ins):
        prk = schedule.handshake_prk(ins["dh"], ins["k_i"], ins["k_r"])
        th3 = hs.transcript(ins["hs1"], ins["hs2"])
        i2r, r2i = schedule.traffic_secrets(prk, th3)
        return [
            schedule.traffic_key(i2r),
            schedule.traffic_iv(i2r),
            schedule.traffic_key(r2i),
            schedule.traffic_iv(r2i),
        ]

    before = keys(inputs)
    changed = dict(inputs)
    changed[field] = bytes([changed[field][0] ^ 1]) + changed[field][1:]
    after = keys(changed)
    assert all(a != b for a, b in zip(before, after, strict=True))
