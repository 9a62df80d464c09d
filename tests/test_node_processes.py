"""Delivery guarantees between real node processes on 127.0.0.1 (PROTOCOL.md c.3).

Each node runs ``tests/support/node_worker.py`` (uvloop) in its own process; the test
drives it over stdin and reads its events from stdout (``tests/support/procs.py``). What
is checked:

- Bulk: N messages A→B arrive exactly once and in send order, and every one is acked
  (A's outbox empty, every row 'delivered').
- Crash: B is SIGKILLed twice mid-stream and restarted on the same port and home; A
  reconnects by itself. Guarantee across a crash: A keeps every unacked message in its
  outbox and, on the next session, resends the unacked tail in outbox order; B stores
  by UNIQUE(peer, id), so a message it committed before the kill but had not acked is
  re-acked and ignored, never stored or shown twice. B shows a chat before its commit
  (delivery's rules), so what a killed life showed but had not stored comes back and is
  shown by the next life, from exactly the first message the store lacks. B's history
  therefore ends up holding each message exactly once, in send order.
- Peer down: messages sent while B is down wait in A's durable outbox, through a clean
  restart of A or a SIGKILL right after ``send`` returned, and are delivered once B
  is back.

Sizes: test 1 sends 100,000 messages; the crash test 20,000 (``ENCLAVE_BIG=1``: 100,000).
Throughput is printed (``-s``), never asserted.
"""

import os
import time

import pytest
from support.nodes import public_pem
from support.procs import BULK_RECEIVER, FAST_RECONNECT, Cluster, write_key_file
from support.streams import history_report, make_body

from enclave.store import Store

BULK_N = 100_000
CRASH_N = 100_000 if os.environ.get("ENCLAVE_BIG") == "1" else 20_000
BODY_SIZE = 100
STREAM_SECONDS = 8.0  # the crash test's stream lasts about this long


def _timeout(n: int) -> float:
    """Generous: only a hang should ever reach it."""
    return 60.0 + n / 500


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.close()


@pytest.fixture
def key_files(rsa_keys, tmp_path):
    return {
        name: write_key_file(tmp_path / f"{name}.pem", rsa_keys[name]) for name in ("alice", "bob")
    }


def _introduce(a, b, rsa_keys) -> None:
    a.request(
        "add_peer", pem=public_pem(rsa_keys["bob"]), address=f"127.0.0.1:{b.port}", name="bob"
    )
    b.request(
        "add_peer", pem=public_pem(rsa_keys["alice"]), address=f"127.0.0.1:{a.port}", name="alice"
    )


def _stored(prefix: str, home) -> int:
    """How many messages of the stream ``prefix`` a stopped node's store holds (a prefix
    of the stream: checked at the end)."""
    with Store.open(home / "enclave.db") as store:
        peer = next(p for p in store.list_peers() if p.name == "alice")
        return history_report(store, peer.fingerprint, prefix)["in_stream"]


def _stream(e: dict, prefix: str) -> dict:
    return e.get("streams", {}).get(prefix) or {
        "count": 0,
        "first": None,
        "last": -1,
        "order_errors": 0,
    }


def _reached(prefix: str, seq: int):
    """A progress line showing that ``seq`` of stream ``prefix`` was received."""
    return lambda e: e["ev"] == "progress" and _stream(e, prefix)["last"] >= seq


def _got_anything(e: dict) -> bool:
    return e["ev"] == "progress" and (e["received"] > 0 or e["dupes"] > 0)


def _delivered(n: int):
    return lambda e: e["ev"] == "progress" and e["delivered_rows"] >= n


def _assert_exactly_once_in_order(report: dict, n: int) -> None:
    assert report["count"] == n, report
    assert report["in_stream"] == n and report["distinct_seqs"] == n, report
    assert report["duplicate_ids"] == 0 and report["duplicate_bodies"] == 0, report
    assert report["order_errors"] == 0, report
    assert (report["first"], report["last"]) == (0, n - 1), report


def _assert_all_acked(report: dict, n: int) -> None:
    assert report["out"] == n, report
    assert report["out_states"] == {"delivered": n}, report
    assert report["outbox"] == 0, report


def test_bulk_messages_arrive_exactly_once_in_order_and_acked(cluster, key_files, rsa_keys):
    n = BULK_N
    a = cluster.start("a", key_files["alice"])
    b = cluster.start("b", key_files["bob"], settings=BULK_RECEIVER)
    _introduce(a, b, rsa_keys)

    t0 = time.perf_counter()
    queued = a.request(
        "send_many", timeout=_timeout(n), peer_fp=b.fp, count=n, prefix="m", size=BODY_SIZE
    )
    t_queued = time.perf_counter()
    b.wait(_reached("m", n - 1), _timeout(n), what=f"B received message {n - 1}")
    t_received = time.perf_counter()
    a.wait(_delivered(n), _timeout(n), what=f"A saw {n} delivered")
    t_acked = time.perf_counter()

    assert queued["count"] == n
    # The stores: B holds each once in send order; A's outbox is empty, all delivered.
    _assert_exactly_once_in_order(b.request("check_history", peer="alice", prefix="m"), n)
    _assert_all_acked(a.request("check_history", peer="bob", prefix="m"), n)
    assert a.request("stats")["node"]["queued"] == 0
    assert a.terminate() == 0 and b.terminate() == 0
    # The event streams (final progress lines, written at the clean stop): B showed
    # each message once, in order; A saw each row delivered once.
    shown = b.last("progress")
    assert shown["received"] == n and shown["shown_twice"] == 0, shown
    assert _stream(shown, "m") == {"count": n, "first": 0, "last": n - 1, "order_errors": 0}
    delivered = a.last("progress")
    assert delivered["delivered_rows"] == n == delivered["delivered"], delivered
    total = t_acked - t0
    print(
        f"\n[bulk] {n:,} x {BODY_SIZE} B A->B: queued (durable) in {t_queued - t0:.2f} s"
        f" ({queued['seconds']:.2f} s in the node), all received at B after"
        f" {t_received - t0:.2f} s, all acked at A after {total:.2f} s:"
        f" {n / total:,.0f} msg/s end to end"
    )


@pytest.mark.parametrize("stream", ["paced", "burst"])
def test_receiver_killed_twice_mid_stream_loses_nothing_and_shows_nothing_twice(
    cluster, key_files, rsa_keys, stream
):
    """paced: A produces the N messages steadily over STREAM_SECONDS, so each kill falls
    while the stream still flows and each new life of B has new messages to receive;
    B is killed right after a commit, before its ack left (the resend is a duplicate).
    burst: A queues all N at once and sends at full speed, so at each kill thousands of
    messages are in flight (committed but unacked, or not yet committed); B is killed
    past a third of the stream and again as soon as its next life has received anything."""
    n = CRASH_N
    a = cluster.start("a", key_files["alice"], settings=FAST_RECONNECT)
    b = cluster.start("b", key_files["bob"], settings={**FAST_RECONNECT, **BULK_RECEIVER})
    _introduce(a, b, rsa_keys)
    port = b.port
    seconds = max(STREAM_SECONDS, n / 10_000)
    rate = n / seconds if stream == "paced" else 0

    t0 = time.perf_counter()
    producing = a.send_command(
        "send_many", peer_fp=b.fp, count=n, prefix="m", size=BODY_SIZE, rate=rate
    )
    lives, a_busy, stored = [], [], []
    for cut in (n // 3, 2 * n // 3):
        if stream == "paced" or not lives:
            b.wait(_reached("m", cut), _timeout(n), what=f"B received message {cut}")
        else:
            b.wait(_got_anything, _timeout(n), what="B received anything")
        b.kill()  # SIGKILL: no commit, ack or goodbye after this point
        stored.append(_stored("m", b.home))
        acked = (a.last("progress") or {}).get("delivered_rows", 0)
        a_busy.append(not a.replied(producing) or acked < n)
        lives.append(b)
        b = cluster.start(
            "b", key_files["bob"], port=port, settings={**FAST_RECONNECT, **BULK_RECEIVER}
        )
        assert b.port == port
    lives.append(b)
    assert a.reply(producing, _timeout(n))["count"] == n
    a.wait(_delivered(n), _timeout(n), what=f"A saw {n} delivered")
    t_acked = time.perf_counter()

    _assert_exactly_once_in_order(b.request("check_history", peer="alice", prefix="m"), n)
    _assert_all_acked(a.request("check_history", peer="bob", prefix="m"), n)
    a_stats = a.request("stats")
    assert a_stats["node"]["queued"] == 0
    assert a_stats["delivered_rows"] == n == a_stats["delivered"], a_stats
    assert a.terminate() == 0 and b.terminate() == 0

    # What each life of B showed, from its progress lines (a killed life's last line is
    # a lower bound of what it showed; the last life wrote its final line at the clean
    # stop). A later life starts at the first message the store lacked after the kill:
    # nothing stored is shown again, what was shown and lost is shown again.
    shown = [_stream(life.last("progress") or {}, "m") for life in lives]
    for after, held in zip(shown[1:], stored, strict=True):
        assert after["count"] == 0 or after["first"] == held, (shown, stored)
    for life in lives:
        p = life.last("progress")
        assert p["shown_twice"] == 0 and _stream(p, "m")["order_errors"] == 0, p
    assert shown[0]["first"] == 0
    assert all(a_busy), f"a kill came after A had everything acked: {a_busy}"
    if stream == "paced":  # each kill fell mid-stream: every later life got new messages
        assert all(s["count"] > 0 for s in shown), shown
        assert shown[-1]["last"] == n - 1, shown

    dupes = [life.last("progress")["dupes"] for life in lives]
    how = f"produced over {seconds:.0f} s" if rate else "queued at once"
    print(
        f"\n[crash/{stream}] {n:,} x {BODY_SIZE} B A->B {how}, B SIGKILLed twice: all acked"
        f" after {t_acked - t0:.2f} s; shown per life of B (first..last):"
        f" {[(s['first'], s['last']) for s in shown]}; resent duplicates ignored per life:"
        f" {dupes}; A handshakes: {a_stats['node']['handshakes']}"
    )


@pytest.mark.parametrize("a_stop", ["sigterm", "sigkill"])
def test_message_to_a_down_peer_is_delivered_after_sender_restart(
    cluster, key_files, rsa_keys, a_stop
):
    a = cluster.start("a", key_files["alice"], each=True, settings=FAST_RECONNECT)
    b = cluster.start("b", key_files["bob"], each=True, settings=FAST_RECONNECT)
    _introduce(a, b, rsa_keys)
    b_port = b.port
    assert b.terminate() == 0  # Bob goes away

    texts = [make_body("away", k, 40) for k in range(3)]
    sent = [a.request("send", peer="bob", text=t) for t in texts]
    if a_stop == "sigkill":
        a.kill()  # right after send returned: the outbox is durable
    else:
        assert a.request("stats")["node"]["queued"] == 3
        assert a.terminate() == 0
    assert not a.of("delivered")

    a = cluster.start("a", key_files["alice"], each=True, settings=FAST_RECONNECT)
    b = cluster.start("b", key_files["bob"], port=b_port, each=True, settings=FAST_RECONNECT)
    for s in sent:
        a.wait(
            lambda e, s=s: e["ev"] == "delivered" and e["rowid"] == s["rowid"],
            30,
            what=f"delivered row {s['rowid']}",
        )
    b.wait(lambda e: e["ev"] == "received" and e["body"] == texts[-1], 30, what="the last message")

    assert [e["body"] for e in b.of("received")] == texts
    assert [e["id"] for e in b.of("received")] == [s["id"] for s in sent]
    _assert_exactly_once_in_order(b.request("check_history", peer="alice", prefix="away"), 3)
    _assert_all_acked(a.request("check_history", peer="bob", prefix="away"), 3)
    assert a.terminate() == 0 and b.terminate() == 0
    assert len(b.of("received")) == 3 and len(a.of("delivered")) == 3
