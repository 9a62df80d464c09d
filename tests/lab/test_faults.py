"""Broken networks, crashes and a full disk between three real node processes.

Alice, Bob and Carol each run ``tests/support/node_worker.py`` inside their own network
namespace of a ``Lab`` (tests/lab/netns.py), listening on 0.0.0.0:7000. Alice and Carol stream
messages to Bob (bodies ``a-000123...`` and ``c-000123...``) while a fault strikes. Every
scenario ends with the same check (``Trio.verify``), printed as one line:

    [scenario] sent N / delivered N / duplicates 0 / lost 0

- sent: outgoing rows the senders made durable (what their users were told was queued);
- delivered: rows Bob's store holds, each stream complete (0..N-1, no gap);
- duplicates: IDs stored twice, bodies stored twice (under two ids) and messages Bob
  showed twice. A killed sender's user queues again from what its restarted store
  holds: a message the killed process had sent ahead of its commit is back in that
  store from its sending log (store/sending.py), with its id, so it is never a second
  message;
and every sent row ends 'delivered' with the outbox empty. During each fault the states
must be honest: what a sender counts as delivered never exceeds what Bob has stored
(``Trio.honest``, reading the sender first and Bob second).

Faults are timed by what the nodes report (progress, offline events), except where the
fault itself has a length (the 30 s partition) or a random moment (the kill -9 points,
from a seeded generator whose seed is printed; ENCLAVE_LAB_SEED replays one).
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import re
import subprocess
import time
from pathlib import Path

import pytest
from support.nodes import public_pem
from support.procs import FAST_RECONNECT, NodeProc, write_key_file
from support.waiting import eventually_blocking

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("ENCLAVE_PURE") == "1",
        reason="the fault lab runs once per CI run, in the native-twin pass",
    ),
]

PORT = 7000
NAMES = {"alice": "a", "bob": "b", "carol": "c"}
# Quick to notice a dead session and to redial, so that faults are seen within seconds.
SETTINGS = {**FAST_RECONNECT, "keepalive_interval": "1.0", "dead_after": "4.0"}


class Trio:
    def __init__(
        self, lab, tmp: Path, rsa_keys, homes: dict | None = None, settings: dict | None = None
    ) -> None:
        self.lab, self.tmp, self.keys = lab, tmp, rsa_keys
        self.settings = SETTINGS if settings is None else {**SETTINGS, **settings}
        self.homes = {n: (homes or {}).get(n, tmp / n) for n in NAMES}
        self.lives = dict.fromkeys(NAMES, 0)
        self.started: list[NodeProc] = []
        self.p: dict[str, NodeProc] = {}
        for name in NAMES:
            lab.add(name)
        self.key_files = {n: write_key_file(tmp / f"{n}.pem", rsa_keys[n]) for n in NAMES}
        for name in NAMES:
            self.start(name)
        self.pem = {n: public_pem(rsa_keys[n]) for n in NAMES}
        for sender in ("alice", "carol"):
            self.introduce(sender, "bob")
            self.introduce("bob", sender)
        self.sent = {"alice": 0, "carol": 0}  # messages each sender has asked for so far

    def start(self, name: str) -> NodeProc:
        self.lives[name] += 1
        p = NodeProc.start(
            f"{name}{self.lives[name]}",
            self.homes[name],
            self.key_files[name],
            PORT,
            settings=self.settings,
            log_dir=self.tmp,
            prefix=self.lab.exec_prefix(name),
            host="0.0.0.0",
        )
        self.started.append(p)
        self.p[name] = p
        return p

    def kill(self, name: str) -> NodeProc:
        self.p[name].kill()  # returns once the process is reaped
        return self.start(name)

    def introduce(self, who: str, whom: str, address: str | None = None) -> None:
        address = address or f"{self.lab.address(whom)}:{PORT}"
        self.p[who].request("add_peer", pem=self.pem[whom], address=address, name=whom)

    def close(self) -> None:
        for p in self.started:
            if not p.reaped:
                p.kill()

    # --- traffic ----------------------------------------------------------------------

    def stream(self, sender: str, count: int, rate: float = 0, start: int | None = None) -> str:
        """Ask ``sender`` to queue ``count`` more messages for Bob; returns the command tag."""
        start = self.sent[sender] if start is None else start
        self.sent[sender] = start + count
        return self.p[sender].send_command(
            "send_many",
            peer_fp=self.p["bob"].fp,
            count=count,
            prefix=NAMES[sender],
            start=start,
            rate=rate,
            chunk=100,
        )

    def outgoing(self, sender: str) -> dict:
        return self.p[sender].request("check_history", peer="bob", prefix="-")

    def stored(self, sender: str) -> dict:
        return self.p["bob"].request("check_history", peer=sender, prefix=NAMES[sender])

    def honest(self) -> dict:
        """Each sender's 'delivered' rows never exceed what Bob stored from it."""
        seen = {}
        for sender in ("alice", "carol"):
            delivered = self.outgoing(sender)["out_states"].get("delivered", 0)
            stored = self.stored(sender)["count"]
            assert delivered <= stored, (sender, delivered, stored)
            seen[sender] = (delivered, stored)
        return seen

    def stored_from(self, sender: str) -> int:
        return self.stored(sender)["count"]

    def until(self, predicate, timeout: float, what: str):
        """Poll the nodes' stores (a query each 0.2 s) until ``predicate()`` is true: they
        are in other processes, with no event for "stored"."""
        return eventually_blocking(predicate, timeout, what, every=0.2)

    def complete(self, timeout: float = 120.0) -> None:
        def done() -> bool:
            return all(
                self.outgoing(s)["outbox"] == 0 and self.stored_from(s) >= self.sent[s]
                for s in ("alice", "carol")
            )

        self.until(done, timeout, "every message stored and acked")

    def verify(self, scenario: str) -> None:
        self.complete()
        sent = delivered = duplicates = 0
        for sender in ("alice", "carol"):
            n, out, got = self.sent[sender], self.outgoing(sender), self.stored(sender)
            sent += out["out"]
            delivered += got["distinct_seqs"]
            duplicates += got["duplicate_ids"] + got["duplicate_bodies"]
            assert got.pop("twice") == [], f"{sender}'s messages stored twice at Bob"
            assert out["out"] == n and out["outbox"] == 0, (sender, out)
            assert out["out_states"] == {"delivered": n}, (sender, out)
            assert (got["first"], got["last"], got["distinct_seqs"]) == (0, n - 1, n), got
            assert got["count"] == n and got["other"] == 0, got
        shown_twice = sum(p.last("progress")["shown_twice"] for p in self._with_progress())
        duplicates += shown_twice
        back = sum(put_back(p.stderr_path) for p in self.started)
        print(
            f"\n[{scenario}] sent {sent} / delivered {delivered} / duplicates {duplicates}"
            f" / lost {sent - delivered}"
            + (f" ({back} sent ahead of their commit, put back after a kill)" if back else "")
        )
        assert sent == delivered and duplicates == 0

    def _with_progress(self) -> list[NodeProc]:
        return [p for p in self.started if p.name.startswith("bob") and p.last("progress")]


def put_back(stderr: Path) -> int:
    """How many rows a node's openings put back from its sending log (its warnings)."""
    text = stderr.read_text(errors="replace") if stderr.exists() else ""
    return sum(int(n) for n in re.findall(r"(\d+) message\(s\) sent just before", text))


@pytest.fixture
def trio_factory(lab, tmp_path, rsa_keys):
    made = []

    def make(**kw) -> Trio:
        t = Trio(lab, tmp_path, rsa_keys, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def bob_reached(trio: Trio, sender: str, count: int, timeout: float = 60.0) -> None:
    trio.until(lambda: trio.stored_from(sender) >= count, timeout, f"{count} from {sender}")


# --- scenarios ----------------------------------------------------------------------------------


def test_ten_percent_loss(trio_factory, lab):
    """10 % of Bob's packets dropped both ways for the whole stream; Carol's link is
    also held to 1 Mbit/s (tbf)."""
    trio = trio_factory()
    lab.loss("bob", 10)
    lab.bandwidth("carol", "1mbit")
    for sender in ("alice", "carol"):
        trio.stream(sender, 2000, rate=1000)
    bob_reached(trio, "alice", 500)
    print(f"\n  during loss: (delivered, stored) {trio.honest()}")
    trio.complete(timeout=180)
    lab.clear("bob", "lab_loss")
    trio.verify("10% loss, Carol at 1 Mbit/s")


def test_partition_of_thirty_seconds_healed(trio_factory, lab):
    """Bob's link goes down for 30 s in mid-stream, then comes back."""
    trio = trio_factory()
    for sender in ("alice", "carol"):
        trio.stream(sender, 3000, rate=300)
    bob_reached(trio, "alice", 300)
    lab.partition("bob")
    alice = trio.p["alice"]
    alice.wait(lambda e: e["ev"] == "offline", 30, what="Alice noticing the partition")
    time.sleep(15)  # the partition's length, half of it
    print(f"\n  mid-partition: (delivered, stored) {trio.honest()}")
    time.sleep(15)  # ... and the other half: 30 s in all
    lab.heal("bob")
    trio.verify("30 s partition healed")


def test_resets_mid_stream(trio_factory, lab):
    """Three times in the stream, Bob's host answers Alice's segments with TCP resets until
    Alice has seen her session die; then the resets stop and she reconnects."""
    trio = trio_factory()
    n = 4000
    for sender in ("alice", "carol"):
        trio.stream(sender, n, rate=500)
    alice = trio.p["alice"]
    for k in (1, 2, 3):
        bob_reached(trio, "alice", k * n // 4)
        mark = alice.mark()
        # Every port: Alice's session to Bob's port, and Bob's presence session to hers.
        lab.resets("bob", lab.address("alice"))
        alice.wait(lambda e: e["ev"] == "offline", 30, start=mark, what="a reset session")
        print(f"\n  reset {k}: (delivered, stored) {trio.honest()}")
        lab.clear("bob", "lab_reset")
    trio.verify("resets mid-stream")


def test_peer_address_changes_without_presence(trio_factory, lab):
    """Bob moves to a new address and restarts, with presence and LAN discovery off
    (nobody dials until a message waits, and nobody hears his new address announced). Carol's user gives her the new address (``--add-peer`` again /
    ``add_peer``); Alice learns it from Bob's next authenticated connection to her (his
    reply), and later dials it by herself."""
    trio = trio_factory(settings={"presence": "false", "discovery": "false"})
    for sender in ("alice", "carol"):
        trio.stream(sender, 1)
    trio.complete()
    trio.p["bob"].kill()
    new = lab.move("bob", 22)
    trio.start("bob")
    for sender in ("alice", "carol"):
        trio.stream(sender, 50)
    # Queued, and honestly so: nothing reaches the old address.
    assert trio.honest() == {"alice": (1, 1), "carol": (1, 1)}

    trio.introduce("carol", "bob", f"{new}:{PORT}")
    bob_reached(trio, "carol", 51)
    assert trio.honest()["alice"] == (1, 1)

    trio.p["bob"].request("send", peer="alice", text="I moved")  # Bob dials Alice
    bob_reached(trio, "alice", 51)

    trio.kill("bob")  # every session ends; Alice must dial the learned address herself
    trio.stream("alice", 50)
    trio.verify("address change")


def test_peer_address_changes_with_presence(trio_factory, lab):
    """Bob moves to a new address and restarts, with presence on (the default): his node
    dials his contacts at start, so Alice and Carol learn where he is from his
    authenticated sessions, with nothing typed, and after he restarts again they dial
    the learned address themselves."""
    trio = trio_factory()
    for sender in ("alice", "carol"):
        trio.stream(sender, 1)
    trio.complete()
    trio.p["bob"].kill()
    lab.move("bob", 22)
    trio.start("bob")
    for sender in ("alice", "carol"):
        trio.stream(sender, 50)
        bob_reached(trio, sender, 51)
    trio.kill("bob")  # every session ends; both dial the learned address
    for sender in ("alice", "carol"):
        trio.stream(sender, 50)
    trio.verify("address change with presence")


def test_kill_minus_nine_at_random_points(trio_factory, lab):
    """A 10,000-message stream from Alice (and 2,000 from Carol); Alice or Bob is SIGKILLed
    at seeded random moments and restarted. A killed sender resumes queuing from what its
    restarted store holds (what it committed, and what it sent ahead of its commit, put
    back from its sending log): every message is stored once, under one id."""
    seed = int(os.environ.get("ENCLAVE_LAB_SEED") or time.time_ns() % 1_000_000)
    print(f"\n  kill -9 seed {seed} (ENCLAVE_LAB_SEED={seed} replays it)")
    rng = random.Random(seed)
    trio = trio_factory()
    n = 10_000
    tag, owner = trio.stream("alice", n, rate=1000), trio.p["alice"]
    trio.stream("carol", 2000, rate=400)
    for k in range(4):
        time.sleep(rng.uniform(0.5, 2.5))  # the random moment of the fault
        victim = rng.choice(["alice", "bob"])
        stored = trio.stored_from("alice")
        if victim == "alice":
            finished = owner.replied(tag)
            trio.kill("alice")
            if not finished:  # its user queues the rest again, from what its store holds
                durable = trio.outgoing("alice")["out"]
                tag = trio.stream("alice", n - durable, rate=1000, start=durable)
                owner = trio.p["alice"]
        else:
            trio.kill("bob")
        print(f"  kill {k + 1}: {victim} with {stored} of Alice's stored at Bob")
    if not owner.reaped:
        owner.reply(tag, timeout=120)  # the last producer finished queuing
    trio.verify(f"kill -9 x4 (seed {seed})")


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a filler file until the disk refuses (ENOSPC)."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    # Unbuffered: a write the full disk cut short leaves nothing in a buffer for the
    # close to try again (that retry raised ENOSPC at the close, now and then).
    with open(filler, "wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            for _ in range(4096):  # bounded: 256 MiB at most
                f.write(chunk)
                os.fsync(f.fileno())
    probe = disk / "probe"
    try:
        probe.write_bytes(b"x" * 4096)
    except OSError as err:
        assert err.errno == errno.ENOSPC
    else:
        probe.unlink()
        raise AssertionError("the disk did not fill up")
    return filler


def test_receiver_disk_full_then_freed(trio_factory, small_disk):
    """Bob's home is on a 16 MiB tmpfs that fills up mid-stream: he stores nothing more,
    acks nothing more, and tells his user once, in one clear line; senders keep the
    messages queued. When space comes back, everything is stored once and acked."""
    trio = trio_factory(homes={"bob": small_disk / "bob"})
    for sender in ("alice", "carol"):
        trio.stream(sender, 1)
    trio.complete()
    bob = trio.p["bob"]
    mark = bob.mark()
    filler = fill(small_disk)
    for sender in ("alice", "carol"):
        trio.stream(sender, 300)
    problem = bob.wait(lambda e: e["ev"] == "problem", 60, start=mark, what="a disk-full notice")
    print(f"\n  Bob's user is told: {problem['text']}")
    assert "cannot write to the message store" in problem["text"]
    assert "full" in problem["text"] and "\n" not in problem["text"]
    print(f"  while full: (delivered, stored) {trio.honest()}")
    filler.unlink()
    bob.wait(
        lambda e: e["ev"] == "problem" and "resumed" in e["text"],
        60,
        start=mark,
        what="receiving resumed",
    )
    trio.verify("disk full, then freed")
    assert len(bob.of("problem", mark)) == 2  # told once when full, once when resumed
