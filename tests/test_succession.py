"""Key succession statements and revocation certificates (enclave/protocol/succession.py;
docs/PROTOCOL.md, "Key succession"): the codec's refusals and every check of ``judge``,
each by a forger who holds what a real attacker could hold.

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
from enclave.protocol import succession as sc
from enclave.protocol.crypto import Identity, spki_pem
from enclave.protocol.succession import (
    Chain,
    Succession,
    decode_revocation,
    decode_succession,
    encode_revocation,
    encode_succession,
    judge,
    judge_revocation,
    sign_revocation,
    sign_succession,
)

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def ids() -> dict[str, Identity]:
    names = ("alice", "alice2", "alice3", "mallory")
    return {
        n: Identity(rsa.generate_private_key(public_exponent=65537, key_size=2048)) for n in names
    }


def chain_of(identity: Identity, **kw) -> Chain:
    return Chain(identity.peer_key, **kw)


def refused(reason: str, s: Succession, chain: Chain) -> None:
    with pytest.raises(PeerError) as err:
        judge(s, chain)
    assert err.value.reason == reason


def test_round_trip_and_judge(ids):
    s = sign_succession(ids["alice"], ids["alice2"], 1, T0)
    data = encode_succession(s)
    assert decode_succession(data) == s
    new_key = judge(decode_succession(data), chain_of(ids["alice"]))
    assert new_key.fingerprint == ids["alice2"].fingerprint
    assert s.new_key_pem == spki_pem(ids["alice2"].peer_key.key)


def test_a_chain_of_two_rotations(ids):
    first = sign_succession(ids["alice"], ids["alice2"], 1, T0)
    second = sign_succession(ids["alice2"], ids["alice3"], 2, T0 + 1)
    key = judge(first, chain_of(ids["alice"]))
    after = Chain(key, 1, {first.old_fp: first.new_fp})
    assert judge(second, after).fingerprint == ids["alice3"].fingerprint


def test_tampered_body_is_refused(ids):
    s = sign_succession(ids["alice"], ids["alice2"], 1, T0)
    refused("succession_bad_signature", replace(s, time_ms=T0 + 1), chain_of(ids["alice"]))


def test_bad_sig_old_is_refused(ids):
    # Mallory names herself alice's successor: she can sign as herself, not as alice.
    s = replace(
        sign_succession(ids["mallory"], ids["alice2"], 1, T0), old_fp=ids["alice"].fingerprint
    )
    body = sc.succession_body(s)
    s = replace(
        s,
        sig_old=ids["mallory"].sign_v2(sc.OLD_LABEL + body),
        sig_new=ids["alice2"].sign_v2(sc.NEW_LABEL + body),
    )
    refused("succession_bad_signature", s, chain_of(ids["alice"]))


def test_a_key_swap_without_the_new_keys_signature_is_refused(ids):
    # A real old signature over a successor whose own signature is someone else's: the
    # statement does not prove the successor's private key is held.
    good = sign_succession(ids["alice"], ids["alice2"], 1, T0)
    body = sc.succession_body(good)
    s = replace(good, sig_new=ids["mallory"].sign_v2(sc.NEW_LABEL + body))
    with pytest.raises(PeerError, match="new key"):
        judge(s, chain_of(ids["alice"]))


def test_swapped_signatures_are_refused(ids):
    s = sign_succession(ids["alice"], ids["alice2"], 1, T0)
    swapped = replace(s, sig_old=s.sig_new, sig_new=s.sig_old)
    refused("succession_bad_signature", swapped, chain_of(ids["alice"]))
    # Each signature is bound to its label: the old key's over the new label fails too.
    body = sc.succession_body(s)
    relabelled = replace(s, sig_old=ids["alice"].sign_v2(sc.NEW_LABEL + body))
    refused("succession_bad_signature", relabelled, chain_of(ids["alice"]))


def test_unknown_old_key_is_refused(ids):
    s = sign_succession(ids["mallory"], ids["alice2"], 1, T0)
    refused("succession_unknown_key", s, chain_of(ids["alice"]))


def test_replay_and_fork_are_refused(ids):
    first = sign_succession(ids["alice"], ids["alice2"], 1, T0)
    after = Chain(ids["alice2"].peer_key, 1, {first.old_fp: first.new_fp})
    refused("succession_replay", first, after)
    # The very statement again, re-signed (PSS is randomized): still a replay.
    refused("succession_replay", sign_succession(ids["alice"], ids["alice2"], 1, T0), after)
    fork = sign_succession(ids["alice"], ids["alice3"], 1, T0 + 5)
    refused("succession_fork", fork, after)


def test_wrong_sequence_and_revoked_old_key_are_refused(ids):
    later = Chain(ids["alice"].peer_key, 3)
    for seq in (1, 3):  # not above the seq held
        refused("succession_sequence", sign_succession(ids["alice"], ids["alice2"], seq, T0), later)
    assert judge(sign_succession(ids["alice"], ids["alice2"], 9, T0), later) is not None
    refused(
        "succession_revoked",
        sign_succession(ids["alice"], ids["alice2"], 1, T0),
        chain_of(ids["alice"], revoked=True),
    )


def test_signing_refuses_what_the_codec_would(ids):
    with pytest.raises(UsageError):
        sign_succession(ids["alice"], ids["alice"], 1, T0)
    with pytest.raises(UsageError):
        sign_succession(ids["alice"], ids["alice2"], 0, T0)


def _fields(ids) -> list:
    s = sign_succession(ids["alice"], ids["alice2"], 1, T0)
    return [s.version, s.old_fp, s.new_fp, s.new_key_pem, s.seq, s.time_ms, s.sig_old, s.sig_new]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda f: f[:-1],  # arity
        lambda f: f + [b""],
        lambda f: [2] + f[1:],  # version
        lambda f: [True] + f[1:],  # a bool is not the integer 1
        lambda f: f[:1] + [f[1][:31]] + f[2:],  # short fingerprint
        lambda f: f[:2] + [bytes(32)] + f[3:],  # fp not of the key
        lambda f: f[:3] + [f[3].replace(b"\n", b"\r\n")] + f[4:],  # non-canonical PEM
        lambda f: f[:3] + [b"not a key"] + f[4:],
        lambda f: f[:4] + [-1] + f[5:],  # seq
        lambda f: f[:4] + [0] + f[5:],
        lambda f: f[:4] + ["1"] + f[5:],
        lambda f: f[:6] + [b""] + f[7:],  # empty signature
        lambda f: f[:7] + [b"x" * 1025],  # oversized signature
        lambda f: f[:1] + [f[2]] + f[2:],  # to the same key
    ],
)
def test_codec_refuses_malformed(ids, mutate):
    with pytest.raises(PeerError) as err:
        decode_succession(msgpack.packb(mutate(_fields(ids)), use_bin_type=True))
    assert err.value.reason == "bad_succession"


def test_codec_refuses_truncation_trailing_bytes_maps_and_noncanonical(ids):
    data = encode_succession(sign_succession(ids["alice"], ids["alice2"], 1, T0))
    for bad in (data[:-1], data + b"\x00", b"", b"\x80", b"x" * (sc.MAX_STATEMENT_BYTES + 1)):
        with pytest.raises(PeerError, match="bad_succession"):
            decode_succession(bad)
    # seq 1 written as a uint16 instead of a fixint: same value, another byte string.
    f = _fields(ids)
    head = msgpack.packb(f[:4], use_bin_type=True)[1:]
    tail = msgpack.packb(f[5:], use_bin_type=True)[1:]
    wide = b"\x98" + head + b"\xcd\x00\x01" + tail
    with pytest.raises(PeerError, match="canonical"):
        decode_succession(wide)


@fuzz(200)
@given(st.binary(max_size=600))
def test_only_peer_errors_escape_the_codecs(data):
    for decode in (decode_succession, decode_revocation):
        try:
            decode(data)
        except PeerError:
            pass


def test_revocation_round_trip_and_judge(ids):
    r = sign_revocation(ids["alice"], T0)
    data = encode_revocation(r)
    assert decode_revocation(data) == r
    judge_revocation(decode_revocation(data), chain_of(ids["alice"]))


def test_revocation_forgeries_are_refused(ids):
    r = sign_revocation(ids["alice"], T0)
    cases = {
        "revocation_bad_signature": (replace(r, time_ms=T0 + 1), chain_of(ids["alice"])),
        "revocation_unknown_key": (sign_revocation(ids["mallory"], T0), chain_of(ids["alice"])),
        "revocation_replay": (r, chain_of(ids["alice"], revoked=True)),
    }
    for reason, (cert, chain) in cases.items():
        with pytest.raises(PeerError) as err:
            judge_revocation(cert, chain)
        assert err.value.reason == reason
    # Mallory's signature over a certificate naming alice's key.
    body = sc.revocation_body(replace(r, sig=b""))
    forged = replace(r, sig=ids["mallory"].sign_v2(sc.REVOKE_LABEL + body))
    with pytest.raises(PeerError, match="revocation_bad_signature"):
        judge_revocation(decode_revocation(encode_revocation(forged)), chain_of(ids["alice"]))
    # A succession signature cannot stand in for a revocation signature.
    s = sign_succession(ids["alice"], ids["alice2"], 1, T0)
    with pytest.raises(PeerError, match="revocation_bad_signature"):
        judge_revocation(replace(r, sig=s.sig_old), chain_of(ids["alice"]))


def test_revocation_codec_refuses_malformed(ids):
    data = encode_revocation(sign_revocation(ids["alice"], T0))
    f = list(msgpack.unpackb(data))
    for bad in (f[:-1], [2] + f[1:], [True] + f[1:], f[:1] + [bytes(32)] + f[2:], f[:4] + [b""]):
        with pytest.raises(PeerError, match="bad_revocation"):
            decode_revocation(msgpack.packb(bad, use_bin_type=True))
    with pytest.raises(PeerError, match="bad_revocation"):
        decode_revocation(data + b"\x00")
