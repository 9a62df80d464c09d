"""The original client as it really sends, against a real node process.

    python tests/lab/v1_original.py [--plain N] [--pooled N] [--threads K]

Bob runs ``tests/support/node_worker.py``; Carol is his contact on the original client.
Carol sends N envelopes the plain way: one TCP connection each, written and closed at once
without reading anything (every other one ends with a reset instead of a FIN), from K
threads as the original's thread pool does. Then N pooled: back to back on up to 3
sockets that she keeps for 30 s and never reads. Each envelope is signed when it is
sent, as the original does (so she is paced by her own RSA, not pre-signed). Then Bob's
events and store are checked and one line is printed:

    plain 1000/1000, pooled 1000/1000, shown once 2000/2000, stored 2000, twice 0 (41.2 s)

Run it from the repository root; ``tests/test_v1_original.py`` runs it small in CI.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from support import seed_client  # noqa: E402
from support.nodes import public_pem  # noqa: E402
from support.procs import NodeProc, write_key_file  # noqa: E402
from support.streams import make_body  # noqa: E402


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=4096)


def send_plain(port: int, carol, bob_public, n: int, threads: int) -> int:
    """n plain sends from ``threads`` workers; returns how many writes succeeded."""

    def one(i: int) -> bool:
        envelope = seed_client.seal(carol, bob_public, make_body("p", i, 20))
        try:
            seed_client.send("127.0.0.1", port, envelope, reset=i % 2 == 1)
        except OSError:
            return False
        return True

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(one, range(n)))


def send_pooled(port: int, carol, bob_public, n: int) -> int:
    """n pooled sends on up to 3 sockets; a failed write is counted as not sent."""
    pool = seed_client.PooledSender("127.0.0.1", port, sockets=3)
    sent = 0
    try:
        for i in range(n):
            try:
                pool.send(seed_client.seal(carol, bob_public, make_body("q", i, 20)))
                sent += 1
            except OSError as err:
                print(f"pooled send {i} failed: {err}", file=sys.stderr)
    finally:
        pool.close()
    return sent


def run(plain: int, pooled: int, threads: int = 4, keys=None, settings=None) -> dict:
    """Send both ways against a fresh node; returns the counts the line is made of.
    ``keys``: (bob, carol) private keys, else new ones; ``settings``: the node's."""
    bob, carol = keys or (_key(), _key())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        key_file = write_key_file(tmp / "bob.pem", bob)
        node = NodeProc.start("bob", tmp / "bob", key_file, settings=settings)
        try:
            node.request("add_peer", pem=public_pem(carol), address="127.0.0.1:9", name="carol")
            started = time.monotonic()
            sent_plain = send_plain(node.port, carol, bob.public_key(), plain, threads)
            sent_pooled = send_pooled(node.port, carol, bob.public_key(), pooled)
            total = sent_plain + sent_pooled
            last = node.wait(
                lambda e: e["ev"] == "progress" and e["received"] >= total, 120, what="all shown"
            )
            elapsed = time.monotonic() - started
            stored = {
                prefix: node.request("check_history", peer="carol", prefix=prefix)
                for prefix in ("p", "q")
            }
            stats = node.request("stats")["node"]
        finally:
            node.terminate()
    streams = last["streams"]
    return {
        "plain": (sent_plain, plain),
        "pooled": (sent_pooled, pooled),
        "shown": (streams.get("p", {}).get("count", 0), streams.get("q", {}).get("count", 0)),
        "shown_twice": last["shown_twice"],
        "stored": {
            p: (r["in_stream"], r["distinct_seqs"], r["duplicate_ids"]) for p, r in stored.items()
        },
        "seconds": elapsed,
        "parked": stats["parked"],
        "refused": stats["refused"],
    }


def line(result: dict) -> str:
    (sp, np), (sq, nq) = result["plain"], result["pooled"]
    shown = sum(result["shown"])
    stored = sum(v[1] for v in result["stored"].values())
    twice = result["shown_twice"] + sum(v[2] for v in result["stored"].values())
    return (
        f"plain {sp}/{np}, pooled {sq}/{nq}, shown once {shown}/{np + nq}, "
        f"stored {stored}, twice {twice} ({result['seconds']:.1f} s; "
        f"{result['parked']} connections waited, {result['refused']} refused)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plain", type=int, default=1000, help="plain sends (default 1000)")
    parser.add_argument("--pooled", type=int, default=1000, help="pooled sends (default 1000)")
    parser.add_argument("--threads", type=int, default=4, help="plain senders at once (4)")
    args = parser.parse_args()
    result = run(args.plain, args.pooled, args.threads)
    print(line(result))
    complete = sum(result["shown"]) == args.plain + args.pooled and result["shown_twice"] == 0
    return 0 if complete else 1


if __name__ == "__main__":
    threading.current_thread().name = "original-client"
    sys.exit(main())
