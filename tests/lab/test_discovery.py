"""LAN discovery between real node processes, each in its own network namespace on the
lab's bridge (tests/lab/netns.py): real sockets, real multicast (mDNS on 224.0.0.251).

- A contact whose stored address is wrong is found by its announcement, and what was
  queued for it is delivered within 10 s of its start; the address it was found at is
  stored only once the handshake there authenticated it.
- A node that is not a contact shows in ``nearby`` as unknown and is never stored.
- A node with discovery off announces nothing.
- Where multicast is blocked the node says so once and explicit addresses still work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support.nodes import public_pem
from support.procs import FAST_RECONNECT, NodeProc, write_key_file
from support.waiting import eventually_blocking

from enclave.node.discovery import BLOCKED

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("ENCLAVE_PURE") == "1",
        reason="the lab runs once per CI run, in the native-twin pass",
    ),
]

PORT = 7000
WRONG = "198.18.0.200"  # on the lab's subnet, but no node there: a dial there fails
FOUND_WITHIN = 10.0  # the bound, from the contact's start to "delivered"


class Nodes:
    def __init__(self, lab, tmp, rsa_keys) -> None:
        self.lab, self.tmp, self.keys = lab, tmp, rsa_keys
        self.p: dict[str, NodeProc] = {}
        self.started: list[NodeProc] = []

    def start(self, name: str, **settings) -> NodeProc:
        if name not in self.lab.nodes:
            self.lab.add(name)
        key_file = write_key_file(self.tmp / f"{name}.key", self.keys[name])
        p = NodeProc.start(
            f"{name}{len(self.started)}",
            self.tmp / name,
            key_file,
            PORT,
            settings={**FAST_RECONNECT, **settings},
            log_dir=self.tmp,
            prefix=self.lab.exec_prefix(name),
            host="0.0.0.0",
            each=True,
            log_level="INFO",
        )
        self.started.append(p)
        self.p[name] = p
        return p

    def add(self, who: str, whom: str, address: str) -> str:
        reply = self.p[who].request(
            "add_peer", pem=public_pem(self.keys[whom]), address=address, name=whom
        )
        return reply["fp"]

    def nearby(self, who: str) -> dict:
        return self.p[who].request("nearby")

    def close(self) -> None:
        for p in self.started:
            if not p.reaped:
                p.kill()


@pytest.fixture
def nodes(lab, tmp_path, rsa_keys):
    made = Nodes(lab, tmp_path, rsa_keys)
    yield made
    made.close()


def test_a_contact_at_a_wrong_address_is_found_and_its_queued_message_delivered(nodes):
    # Bob knows Alice at a wrong address too, so no session can come from his side.
    nodes.start("bob", discovery="false")
    nodes.add("bob", "alice", f"{WRONG}:{PORT}")
    nodes.p["bob"].request("quit")
    nodes.p["bob"].wait(lambda e: e["ev"] == "stopped", 30, what="bob stopped")

    alice = nodes.start("alice")
    bob_fp = nodes.add("alice", "bob", f"{WRONG}:{PORT}")
    sent = alice.request("send", peer="bob", text="found you")
    assert alice.request("peer", fp=bob_fp)["peer"]["learned"] is None

    bob = nodes.start("bob")  # discovery on: it announces itself
    delivered = alice.wait(
        lambda e: e["ev"] == "delivered" and e["rowid"] == sent["rowid"],
        FOUND_WITHIN,
        what="the queued message delivered to bob, found by discovery",
    )
    assert delivered["peer"] == bob_fp
    assert bob.wait(lambda e: e["ev"] == "received", 5, what="received")["body"] == "found you"
    learned = f"{nodes.lab.address('bob')}:{PORT}"
    eventually_blocking(
        lambda: alice.request("peer", fp=bob_fp)["peer"]["learned"] == learned,
        10,
        "alice to store where she found bob",
        every=0.2,
    )
    assert alice.request("peer", fp=bob_fp)["peer"]["address"] == f"{WRONG}:{PORT}"  # kept


def test_an_unknown_node_is_listed_not_trusted_and_one_without_discovery_is_not_heard(nodes):
    alice = nodes.start("alice")
    dave = nodes.start("mallory", discovery="false")  # started first: heard first, if at all
    carol = nodes.start("carol")
    seen = eventually_blocking(
        lambda: [n for n in nodes.nearby("alice")["nearby"] if n["fp"] == carol.fp],
        15,
        "alice to hear carol",
        every=0.2,
    )
    assert seen[0]["known"] is False and seen[0]["contact"] is None
    assert seen[0]["addresses"] == [f"{nodes.lab.address('carol')}:{PORT}"]
    assert alice.request("peer", fp=carol.fp)["peer"] is None  # listed, never stored
    assert dave.fp not in {n["fp"] for n in nodes.nearby("alice")["nearby"]}
    assert dave.fp not in {n["fp"] for n in nodes.nearby("carol")["nearby"]}
    off = nodes.nearby("mallory")
    assert off["state"] == "off: --no-discovery or discovery = false" and off["nearby"] == []
    assert nodes.nearby("alice")["state"] == "on"


def test_blocked_multicast_is_said_once_and_explicit_addresses_still_work(nodes, lab):
    lab.add("alice")
    lab.nft(
        "alice",
        "table inet lab_mdns {\n"
        " chain out { type filter hook output priority 0; policy accept;"
        " ip daddr 224.0.0.251 drop; }\n"
        " chain in { type filter hook input priority 0; policy accept;"
        " ip daddr 224.0.0.251 drop; }\n"
        "}\n",
    )
    alice = nodes.start("alice")
    nodes.start("bob")
    problem = alice.wait(lambda e: e["ev"] == "problem", 20, what="the blocked notice")
    assert problem["text"] == BLOCKED
    nodes.add("bob", "alice", f"{lab.address('alice')}:{PORT}")
    nodes.add("alice", "bob", f"{lab.address('bob')}:{PORT}")
    sent = alice.request("send", peer="bob", text="over the given address")
    alice.wait(
        lambda e: e["ev"] == "delivered" and e["rowid"] == sent["rowid"], 15, what="delivered"
    )
    assert nodes.nearby("alice")["state"] == "blocked"
    assert [e for e in alice.events if e["ev"] == "problem"] == [problem]  # once


def test_without_a_node_nearby_and_find_inviter_listen_themselves(nodes, lab, tmp_path):
    """A joiner's side has no node: ``find_inviter`` and ``enclave nearby`` listen alone."""
    carol = nodes.start("carol")
    carol.request("invites", nameplates=[7])
    lab.add("bob")
    code = (
        "import asyncio; from enclave.node import find_inviter;"
        " print(asyncio.run(find_inviter(7, 10.0)))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    found = subprocess.run(
        [*lab.exec_prefix("bob"), sys.executable, "-c", code],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert found.stdout.strip() == f"['{lab.address('carol')}:{PORT}']", found.stderr
    listed = subprocess.run(
        [*lab.exec_prefix("bob"), sys.executable, "-m", "enclave", "--home",
         str(tmp_path / "joiner"), "nearby"],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "unknown (not a contact)" in listed.stdout
    assert f"{lab.address('carol')}:{PORT}  invites 7" in listed.stdout
    assert carol.fp[:4] in listed.stdout


def running_enclave(argv: list[str], env: dict):
    """``argv`` (a command of Enclave, maybe behind ``ip netns exec``) as a process whose
    stdout is read line by line (``Lines``)."""
    from test_cli_processes import Lines

    return Lines(
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
    )


def test_enclave_join_finds_the_inviter_by_its_code_across_namespaces(lab, tmp_path, rsa_keys):
    """Issue 19's pairing with no address typed: ``enclave invite`` runs in Carol's
    namespace (no node of hers: the command listens on 0.0.0.0 and announces the code's
    number), ``enclave join CODE`` in Bob's finds it on the bridge by that number and
    pairs; both end with the other as a verified contact."""
    from enclave.identity import home, keys

    password = "lab pairing password"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "ENCLAVE_PASSWORD": password}
    argv = {}
    for name in ("carol", "bob"):
        lab.add(name)
        keys.save_identity(home.Home(tmp_path / name), rsa_keys[name], password)
        argv[name] = [*lab.exec_prefix(name), sys.executable, "-m", "enclave",
                      "--home", str(tmp_path / name)]  # fmt: skip
    network = ["--host", "0.0.0.0", "--port", str(PORT)]
    inviting = running_enclave(
        [*argv["carol"], "invite", *network, "--set", "display_name=carol"], env
    )
    try:
        code = inviting.wait(lambda s: s.startswith("Your code: "), "the code").split(": ")[1]
        joined = subprocess.run(
            [*argv["bob"], "join", code, *network, "--set", "display_name=bob"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90, env=env,
        )  # fmt: skip
        assert joined.returncode == 0, joined.stdout + joined.stderr
        assert "Paired with carol" in joined.stdout
        inviting.wait(lambda s: "Paired with bob" in s, "the inviter's end")
        assert inviting.proc.wait(60) == 0
    finally:
        inviting.stop()
    listed = subprocess.run([*argv["bob"], "peers"], capture_output=True, text=True, env=env)
    row = [line.split() for line in listed.stdout.splitlines() if line.startswith("carol")]
    assert row and "yes" in row[0] and f"{lab.address('carol')}:{PORT}" in row[0]


def test_no_lan_interface_is_said_at_start_by_the_command(lab, tmp_path, rsa_keys):
    """A namespace with loopback alone: the node finds no interface for mDNS while it
    starts (before any face listens to its events); ``enclave listen`` says so once in
    its start-up lines, and the node serves on."""
    from enclave.identity import home, keys

    ns = f"encl{os.getpid()}bare"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        keys.save_identity(home.Home(tmp_path / "solo"), rsa_keys["carol"], "lab bare password")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
               "ENCLAVE_PASSWORD": "lab bare password"}  # fmt: skip
        argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "enclave", "--home",
                str(tmp_path / "solo"), "listen", "--json", "--host", "0.0.0.0", "--port",
                str(PORT)]  # fmt: skip
        node = running_enclave(argv, env)
        try:
            node.event("the node up", type="started")
            line = node.wait(lambda s: '"what": "problem"' in s, "the notice")
            assert json.loads(line)["text"] == BLOCKED
        finally:
            code, _ = node.stop()
        assert code == 0
        assert sum('"what": "problem"' in line for line in node.seen) == 1
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
