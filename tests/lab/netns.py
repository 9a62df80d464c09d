"""A small network lab: namespaces joined by a bridge, and the faults we can inject.

Root only. ``Lab`` makes a switch namespace holding a bridge, and one namespace per node
with an ``eth0`` (a veth whose other end is on the bridge) at 198.18.0.K/24. That range
(RFC 2544, for benchmarking) lives only inside these namespaces: they have no route to
anything else. Every name carries a unique tag (``encl<pid>x<n>``); ``close`` deletes the
namespaces (their veths go with them), and an atexit hook does it for a crashed run.

This kernel has no ``tc netem``, so the faults are:
- loss: nftables ``numgen random mod 100 < N drop`` on a node's input and output;
- partition: the node's bridge port down (``heal`` brings it up);
- resets: nftables ``reject with tcp reset`` for a source address and port;
- bandwidth: ``tc qdisc ... tbf`` on a node's eth0;
- a new address: ``move`` swaps the node's address on eth0.
Latency would need a user-space delay proxy; no scenario here uses one.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import subprocess

NET = "198.18.0"
_tags = itertools.count(1)
_live: set[str] = set()  # namespaces not yet deleted, for the atexit hook


def unavailable() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the network lab needs root (ip netns); CI runs as root"
    for tool in ("ip", "nft", "tc"):
        if shutil.which(tool) is None:
            return f"the network lab needs `{tool}` (apt-get install iproute2 nftables)"
    return None


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip() or done.returncode}")
    return done


def _delete(ns: str) -> None:
    run("ip", "netns", "del", ns, check=False)
    _live.discard(ns)


@atexit.register
def _cleanup() -> None:
    for ns in list(_live):
        _delete(ns)


class Lab:
    def __init__(self) -> None:
        self.tag = f"encl{os.getpid()}x{next(_tags)}"
        self.switch = f"{self.tag}-sw"
        self.nodes: dict[str, tuple[str, str]] = {}  # name -> (namespace, address)
        self._add_ns(self.switch)
        run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.switch, "link", "set", "br0", "up")

    def _add_ns(self, ns: str) -> None:
        run("ip", "netns", "add", ns)
        _live.add(ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")

    def add(self, name: str) -> str:
        """A node namespace on the bridge; returns its address."""
        ns, k = f"{self.tag}-{name}", len(self.nodes) + 1
        address = f"{NET}.{k}"
        self._add_ns(ns)
        port = self._port(name)
        run(
            "ip",
            "link",
            "add",
            "eth0",
            "netns",
            ns,
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            self.switch,
        )
        run("ip", "-n", self.switch, "link", "set", port, "master", "br0")
        run("ip", "-n", self.switch, "link", "set", port, "up")
        run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        self.nodes[name] = (ns, address)
        return address

    def _port(self, name: str) -> str:
        return f"p-{name}"[:15]

    def ns(self, name: str) -> str:
        return self.nodes[name][0]

    def address(self, name: str) -> str:
        return self.nodes[name][1]

    def exec_prefix(self, name: str) -> list[str]:
        """Run a command inside the node's namespace (``ip netns exec`` execs: same pid)."""
        return ["ip", "netns", "exec", self.ns(name)]

    def nft(self, name: str, script: str) -> None:
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns(name), "nft", "-f", "-"],
            input=script,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"nft in {name}: {done.stderr.strip()}")

    # --- faults -----------------------------------------------------------------------

    def loss(self, name: str, percent: int) -> None:
        """Drop ``percent`` % of the node's packets at random, both ways."""
        rule = f"numgen random mod 100 < {percent} drop"
        self.nft(
            name,
            (
                "table inet lab_loss {\n"
                f" chain in {{ type filter hook input priority 0; policy accept; {rule}; }}\n"
                f" chain out {{ type filter hook output priority 0; policy accept; {rule}; }}\n"
                "}\n"
            ),
        )

    def clear(self, name: str, table: str) -> None:
        run(
            "ip",
            "netns",
            "exec",
            self.ns(name),
            "nft",
            "delete",
            "table",
            "inet",
            table,
            check=False,
        )

    def resets(self, name: str, source: str, port: int | None = None) -> None:
        """The node answers every TCP segment from ``source`` (to ``port``, or to any
        port) with a reset."""
        to_port = "" if port is None else f" tcp dport {port}"
        self.nft(
            name,
            (
                "table inet lab_reset {\n"
                " chain in { type filter hook input priority 0; policy accept;"
                f" ip saddr {source} meta l4proto tcp{to_port} reject with tcp reset; }}\n"
                "}\n"
            ),
        )

    def partition(self, name: str) -> None:
        run("ip", "-n", self.switch, "link", "set", self._port(name), "down")

    def heal(self, name: str) -> None:
        run("ip", "-n", self.switch, "link", "set", self._port(name), "up")

    def bandwidth(self, name: str, rate: str = "1mbit") -> None:
        run(
            "ip",
            "netns",
            "exec",
            self.ns(name),
            "tc",
            "qdisc",
            "replace",
            "dev",
            "eth0",
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            "32kbit",
            "latency",
            "400ms",
        )

    def move(self, name: str, k: int) -> str:
        """The node leaves its address for 198.18.0.K (as a laptop changing networks)."""
        ns, old = self.nodes[name]
        new = f"{NET}.{k}"
        run("ip", "-n", ns, "addr", "del", f"{old}/24", "dev", "eth0")
        run("ip", "-n", ns, "addr", "add", f"{new}/24", "dev", "eth0")
        self.nodes[name] = (ns, new)
        return new

    def close(self) -> None:
        for ns, _ in self.nodes.values():
            _delete(ns)
        _delete(self.switch)
