"""End-to-end figures of Enclave between real processes, with references, in one run.

    python bench/e2e.py [--quick] [--out bench/results/e2e.json] [--profile cprofile|py-spy]

Everything runs on 127.0.0.1, each side in its own process on uvloop:

1. Durable throughput: node A submits N chats of 100 characters to node B through
   ``Node.submit_many`` (one call); the clock stops when A has seen all N ``delivered`` (each one
   stored by B, shown to B's application and acked back to A). N = 100,000
   (``--quick``: 5,000).
2. One-way latency at a paced 1,000 msg/s for about 5 s: A notes ``time.monotonic()``
   right before each ``submit``, B notes it when ``MessageReceived`` reaches its
   subscriber (the same clock: both processes run on this machine). p50/p99/p999.
3. Handshakes per second for new sessions: initiator Connections (bench/ref_worker.py
   ``dial``) against node B, each closed once established, next to the same run's
   RSA-4096 private-operation rate (sign, thread pool of 2).
4. References, same run, same message count: (a) the seed's method, one v1 envelope
   per message (``legacy.seal`` + one TCP connection each, opened on the other side),
   capped at 500 messages; (b) TLS 1.3 (Python ssl on uvloop) carrying the same framed
   messages with an ack per batch; (c) the raw ceiling: the same frames with one
   AES-256-GCM seal each and no node logic. Every Enclave figure is given as a ratio
   to these.
5. Microbenchmarks, first and alone (no node process runs meanwhile): pytest-benchmark
   on bench/bench_fast.py (each ``enclave._fast`` twin, native vs pure, against the
   5x target) and bench/bench_protocol.py (AEAD seal/open per frame, encode/decode per
   chat), in a subprocess; their medians per operation join the table and the JSON.
   ``--quick`` runs each case a few rounds only: the rows are there, marked quick.
7. A handshake flood from strangers: node W (defaults, but the per-peer handshake
   bucket) and its contact D at 127.0.0.1. D's first message on a new session, timed
   from the TCP connect to W's ack (bench/ref_worker.py ``first-messages``), N times in a
   row, first quiet, then while two processes (``hs-flood``) send junk HS1s claiming D,
   each from 64 addresses of its own; p50/p99 of both, and what W refused meanwhile.
6. One contact flooding: node V with its default receive quotas and two contacts, H (a
   node) and F (bench/ref_worker.py ``flood``: an authenticated contact that writes
   batches of 1,024 chats as fast as the socket takes them and ignores THROTTLE). H's
   one-way latency to V at a paced 200 msg/s, first with F quiet, then while F floods;
   p50/p99 of both, V's CPU, and what F sent, got acked and was told.

``--profile`` adds one more throughput pass (not the one reported) with cProfile in
both nodes' event-loop and store-writer threads, or py-spy sampling both processes, and
prints where the time went. Nodes: bench/node_worker.py; references: bench/ref_worker.py.
Results go to ``--out`` as JSON and a table is printed. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import pstats
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NODE_WORKER = HERE / "node_worker.py"
REF_WORKER = HERE / "ref_worker.py"
FLEET_WORKER = HERE / "fleet_worker.py"

# Node B also takes the handshake run. Its abuse budgets (per-address verifies, per-peer
# handshakes: PROTOCOL.md b.4) would otherwise cap one dialer at a few handshakes per
# second, which measures the budget, not the node; they do not touch the message path.
# Its receive quotas per contact (PROTOCOL.md "Receive quotas") are raised too: at their
# defaults (1,000 chats/s per contact) the throughput case would measure the quota, not
# the node. The flooding case (V) keeps every default.
B_SETTINGS = {
    "verify_rate_per_address": 100000.0,
    "verify_burst_per_address": 100000.0,
    "handshake_rate_per_peer": 100000.0,
    "handshake_burst_per_peer": 100000.0,
    "receive_rate_per_peer": 1e7,
    "receive_burst_per_peer": 1e7,
    "receive_bytes_rate_per_peer": 1e10,
    "receive_bytes_burst_per_peer": 1e10,
}
TARGETS = {
    "throughput": 100_000,  # msg/s, durable (stored + acked)
    "p50_us": 150,
    "p99_us": 1000,
    "handshake_share": 0.80,  # of what the RSA private-op rate allows
    "idle_session_kb": 10,
    "broadcast_ms": 20,
    "help_ms": 150,
    "idle_cpu": 0.01,  # share of one core
    "fast_speedup": 5.0,  # each _fast twin: pure time / native time
    "flood_factor": 2.0,  # another contact's latency while one floods: at most this x quiet
    "hs_flood_s": 2.0,  # an honest contact's first message during a handshake flood, p99
}
HONEST_RATE = 200.0  # msg/s of the honest contact in the flooding case
HS_FLOOD_SETTINGS = {"handshake_rate_per_peer": 1000.0, "handshake_burst_per_peer": 1000.0}
FLOOD_ADDRESSES = 64  # source addresses of each handshake-flooding process
IDLE_PEERS = 10  # peer nodes (one process each) for the idle and broadcast cases
IDLE_SECONDS = 10.0


# --- processes ---------------------------------------------------------------------------


class Proc:
    """A worker process speaking JSON lines; a reader thread queues its stdout."""

    def __init__(self, name: str, argv: list[str], log_dir: Path) -> None:
        self.name = name
        self.stderr_path = log_dir / f"{name}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, *map(str, argv)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self.lines: queue.Queue = queue.Queue()
        self._tag = 0
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.lines.put(json.loads(raw))
        self.lines.put(None)

    def line(self, timeout: float) -> dict:
        try:
            item = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.name}: no answer in {timeout:.0f} s{self._err()}") from None
        if item is None:
            raise RuntimeError(f"{self.name} exited (code {self.proc.poll()}){self._err()}")
        return item

    def _err(self) -> str:
        self._stderr.flush()
        tail = self.stderr_path.read_text(errors="replace")[-3000:]
        return f"\n--- {self.name} stderr ---\n{tail}" if tail else ""

    def request(self, cmd: str, timeout: float = 60.0, **args) -> dict:
        self._tag += 1
        self.proc.stdin.write((json.dumps({"cmd": cmd, "tag": self._tag, **args}) + "\n").encode())
        self.proc.stdin.flush()
        reply = self.line(timeout)
        if reply.get("re") != self._tag or "error" in reply:
            raise RuntimeError(f"{self.name} {cmd}: {reply}{self._err()}")
        return reply

    def close(self, timeout: float = 30.0) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


def node(name: str, tmp: Path, key_file: Path, settings: dict | None = None) -> Proc:
    p = Proc(
        name,
        [
            NODE_WORKER,
            "--home",
            tmp / name,
            "--key-file",
            key_file,
            "--settings",
            json.dumps(settings or {}),
        ],
        tmp,
    )
    ready = p.line(60)
    p.port, p.fp = ready["port"], ready["fp"]
    return p


def ref(name: str, tmp: Path, *args) -> Proc:
    return Proc(name, [REF_WORKER, *args, "--dir", tmp], tmp)


# --- microbenchmarks -----------------------------------------------------------------------

# in-process pytest-benchmark cases
MICRO_FILES = ("bench_fast.py", "bench_protocol.py", "bench_store.py")
MICRO_OPTIONS = {
    # pytest-benchmark's defaults, pinned (about 20-30 s here for both files)
    "full": ["--benchmark-max-time=1.0", "--benchmark-min-rounds=5"],
    # a few rounds per case (about 8 s, most of it the cases' own fixed pedantic rounds):
    # enough to produce every row, too few to judge one
    "quick": ["--benchmark-max-time=0.01", "--benchmark-min-rounds=1"],
}


def microbenchmarks(tmp: Path, quick: bool) -> dict:
    """Run MICRO_FILES under pytest-benchmark in a subprocess; the medians per operation.

    Cases are read generically from their ``extra_info``, by bench/conftest.py's
    convention: ``ops`` (operations per timed call) with ``twin`` ("native" or "pure",
    paired by benchmark group) makes a ``_fast`` pair; ``ops`` without ``twin`` (with
    ``unit``, what one call covers, and ``each``, what one operation is) a per-op row."""
    mode = "quick" if quick else "full"
    out = tmp / "micro.json"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    argv += [str(HERE / f) for f in MICRO_FILES]
    argv += ["--benchmark-only", f"--benchmark-json={out}", *MICRO_OPTIONS[mode]]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    t0 = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - t0
    if done.returncode != 0 or not out.exists() or not out.stat().st_size:
        tail = (done.stdout + done.stderr)[-4000:]
        raise RuntimeError(f"microbenchmarks: pytest exited {done.returncode}\n{tail}")
    data = json.loads(out.read_text())
    benches = data["benchmarks"]
    return {
        "mode": mode,
        "files": [f"bench/{f}" for f in MICRO_FILES],
        "options": MICRO_OPTIONS[mode],
        "pytest_benchmark": data.get("version"),
        "seconds": round(seconds, 1),
        "twins": twin_pairs(benches),
        "per_op": per_op_cases(benches),
    }


def _case(bench: dict) -> str:
    return bench.get("group") or bench["name"].split("[", 1)[0]


def twin_pairs(benches: list[dict]) -> list[dict]:
    """One row per benchmark group whose cases name a twin: the per-op median of each
    twin and the speed-up, pure time / native time (None if a twin is missing)."""
    groups: dict[str, dict] = {}
    for bench in benches:
        info = bench.get("extra_info", {})
        if not (info.get("ops") and info.get("twin")):
            continue
        pair = groups.setdefault(_case(bench), {"rounds": {}})
        pair[info["twin"]] = bench["stats"]["median"] / info["ops"]
        pair["rounds"][info["twin"]] = bench["stats"]["rounds"]
    rows = []
    for case, pair in sorted(groups.items()):
        native, pure = pair.get("native"), pair.get("pure")
        rows.append(
            {
                "case": case,
                "native_s": native,
                "pure_s": pure,
                "speedup": pure / native if native and pure else None,
                "rounds": pair["rounds"],
            }
        )
    return rows


def per_op_cases(benches: list[dict]) -> list[dict]:
    """Every other case that says how many operations one timed call covers, in run order."""
    rows = []
    for bench in benches:
        info = bench.get("extra_info", {})
        if not info.get("ops") or info.get("twin"):
            continue
        rows.append(
            {
                "case": info.get("unit") or _case(bench),
                "test": bench["fullname"],
                "each": info.get("each", "op"),
                "ops": info["ops"],
                "per_op_s": bench["stats"]["median"] / info["ops"],
                "rounds": bench["stats"]["rounds"],
            }
        )
    return rows


# --- keys ----------------------------------------------------------------------------------


def _new_key_pem(bits: int = 4096) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def make_keys(tmp: Path, names: list[str]) -> dict[str, tuple[Path, Path]]:
    """RSA-4096 keys as unencrypted PEM files in the run's temporary folder (a benchmark
    shortcut; Enclave itself keeps keys encrypted)."""
    with ProcessPoolExecutor(2) as pool:
        pems = list(pool.map(_gen, names))
    out = {}
    for name, (private, public) in zip(names, pems, strict=True):
        key_file, pub_file = tmp / f"{name}.key.pem", tmp / f"{name}.pub.pem"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private)
        pub_file.write_bytes(public)
        out[name] = (key_file, pub_file)
    return out


def _gen(_name: str) -> tuple[bytes, bytes]:
    return _new_key_pem()


def _gen_small(_index: int) -> tuple[bytes, bytes]:
    return _new_key_pem(2048)


# --- measurements ----------------------------------------------------------------------------


def percentiles_us(values: list[float]) -> dict:
    v = sorted(values)

    def at(q: float) -> float:
        return v[min(len(v) - 1, int(q * len(v)))] * 1e6

    return {
        "count": len(v),
        "p50_us": at(0.50),
        "p99_us": at(0.99),
        "p999_us": at(0.999),
        "max_us": v[-1] * 1e6,
    }


def cpu_delta(before: dict, after: dict, seconds: float) -> dict:
    """Share of one core each thread used over ``seconds``."""
    return {
        name: round((after[name] - before.get(name, 0.0)) / seconds, 3)
        for name in sorted(after)
        if after[name] - before.get(name, 0.0) > 0.005 * seconds
    }


def enclave_throughput(a: Proc, b: Proc, n: int) -> dict:
    received_before = b.request("stats")["received"]
    cpu_a, cpu_b = a.request("cpu")["threads"], b.request("cpu")["threads"]
    r = a.request("throughput", timeout=60 + n / 500, peer_fp=b.fp, n=n)
    stats_b = b.request("stats")
    seconds = r["seconds"]
    received = stats_b["received"] - received_before
    if received != n:
        raise RuntimeError(f"B showed {received} of {n} messages")
    return {
        "n": n,
        "seconds": seconds,
        "rate": n / seconds,
        "durable_seconds": r["durable_seconds"],
        "submit_seconds": r["submit_seconds"],
        "cpu_share": {
            "A": cpu_delta(cpu_a, a.request("cpu")["threads"], seconds),
            "B": cpu_delta(cpu_b, b.request("cpu")["threads"], seconds),
        },
        "node_stats": {"A": a.request("stats")["node"], "B": stats_b["node"]},
    }


def enclave_latency(a: Proc, b: Proc, rate: float, n: int) -> dict:
    b.request("record", prefix="L")
    sent = a.request("pace", timeout=60 + n / rate, peer_fp=b.fp, rate=rate, n=n, prefix="L")
    reply = b.request("received")
    got, arrived = reply["times"], reply["arrived"]
    missing = [k for k in sent["sent"] if k not in got]
    if missing:
        raise RuntimeError(f"B did not report {len(missing)} of {n} paced messages")
    one_way = [got[k] - t for k, t in sent["sent"].items()]
    # Where the time goes, per message: A hands the message to its link while its
    # enqueue commit runs, so A's commit ("queued") is off the path; B's commit is on it.
    keys = list(sent["sent"])
    segments = {
        "A submit -> B decrypted": [arrived[k] - sent["sent"][k] for k in keys],
        "B decrypted -> shown": [got[k] - arrived[k] for k in keys],
        "A submit -> A committed": [sent["durable"][k] - sent["sent"][k] for k in keys],
    }
    return {
        "rate": rate,
        **percentiles_us(one_way),
        "segments": {name: percentiles_us(v) for name, v in segments.items()},
    }


def help_wall(runs: int = 7) -> dict:
    """``enclave --help`` wall time, each run a fresh interpreter (median of ``runs``)."""
    times = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "enclave", "--help"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"runs": runs, "median_ms": 1000 * times[runs // 2], "min_ms": 1000 * times[0]}


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a whole process so far (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def idle_and_broadcast(tmp: Path, keys, hub_key, seconds: float, count: int) -> dict:
    """A hub node with IDLE_PEERS peer nodes (one process each), every session warm
    (one message each way first); then the hub's whole-process CPU over ``seconds`` of
    idleness (from /proc), then one broadcast from the hub to all its peers."""
    hub = node("hub", tmp, hub_key[0])
    peers = [node(f"p{i}", tmp, keys[f"p{i}"][0]) for i in range(count)]
    try:
        hub_pem = hub_key[1].read_text()
        for i, p in enumerate(peers):
            p.request("add_peer", pem=hub_pem, address=f"127.0.0.1:{hub.port}")
            hub.request("add_peer", pem=keys[f"p{i}"][1].read_text(), address=f"127.0.0.1:{p.port}")
        for p in peers:
            p.request("warm", peer_fp=hub.fp)
            hub.request("warm", peer_fp=p.fp)
        sessions = hub.request("stats")["node"]["sessions"]
        broadcasts = [hub.request("broadcast") for _ in range(3)]  # warm first, then measure
        time.sleep(1.0)  # let the last acks settle before the idle window (not a sync point)
        cpu0, t0 = process_cpu(hub.pid), time.monotonic()
        time.sleep(seconds)  # the measured idle window
        cpu1, t1 = process_cpu(hub.pid), time.monotonic()
        return {
            "peers": count,
            "sessions": sessions,
            "idle_seconds": t1 - t0,
            "idle_cpu_share": (cpu1 - cpu0) / (t1 - t0),
            "broadcast_ms": [1000 * b["seconds"] for b in broadcasts],
            "broadcast_durable_ms": [1000 * b["durable_seconds"] for b in broadcasts],
            "hub_rss_kb": process_rss_kb(hub.pid),
        }
    finally:
        for p in (hub, *peers):
            p.request("quit")
        for p in (hub, *peers):
            p.close()


SESSIONS_PER_KEY = 60  # under connections_per_peer = 64
SESSIONS_PER_ADDRESS = 60  # under max_per_address = 64
HOLDERS = 2  # initiator processes
S_SETTINGS = {  # the idle-sessions node: caps raised for the run (see idle_sessions)
    **B_SETTINGS,
    "verify_rate": 100000.0,
    "verify_burst": 100000.0,
    "max_connections": 12000,
    "max_per_address": 64,
    "connections_per_peer": 64,
    "idle_timeout": 3600.0,
}


def idle_sessions(tmp: Path, node_key, count: int) -> dict:
    """One node holding ``count`` authenticated idle sessions, and its RSS per session.

    The initiators (bench/ref_worker.py ``hold``, HOLDERS processes) use RSA-2048 keys
    (the protocol's minimum; the node's own key stays RSA-4096, so its two private
    operations per session are the real ones), SESSIONS_PER_KEY sessions per key and
    SESSIONS_PER_ADDRESS per source address 127.0.0.x. The node's caps are raised for
    the run (S_SETTINGS): 12,000 connections, 64 sessions per peer, no idle expiry, and
    the abuse budgets of the handshake case. RSS is read from /proc after the peers were
    added and again once every session is established; the difference per session."""
    keys_dir = tmp / "holdkeys"
    keys_dir.mkdir()
    n_keys = -(-count // SESSIONS_PER_KEY)
    with ProcessPoolExecutor(2) as pool:
        pems = list(pool.map(_gen_small, range(n_keys)))
    for i, (private, _) in enumerate(pems):
        (keys_dir / f"k{i}.pem").write_bytes(private)
    s = node("S", tmp, node_key[0], S_SETTINGS)
    holders = []
    try:
        for _, public in pems:
            s.request("add_peer", pem=public.decode(), address=None)
        rss_before = process_rss_kb(s.pid)
        t0 = time.monotonic()
        per = -(-count // HOLDERS)
        for h in range(HOLDERS):
            first, n = h * per, min(per, count - h * per)
            args = ["hold", "--keys-dir", keys_dir, "--peer-pem", node_key[1], "--port", s.port]
            args += ["--n", n, "--first", first, "--per-address", SESSIONS_PER_ADDRESS]
            holders.append(ref(f"hold{h}", tmp, *args, "--concurrency", 4))  # 8 = crypto_queue
        held = [h.line(120 + count / 20) for h in holders]
        seconds = time.monotonic() - t0
        stats = s.request("stats")["node"]
        rss_after = process_rss_kb(s.pid)
        sessions = stats["sessions"]
        return {
            "requested": count,
            "held": sum(x["ok"] for x in held),
            "outcomes": [x["outcomes"] for x in held],
            "sessions": sessions,
            "seconds_to_establish": seconds,
            "rss_before_kb": rss_before,
            "rss_after_kb": rss_after,
            "rss_per_session_kb": (rss_after - rss_before) / max(1, sessions),
            "initiator_keys": n_keys,
        }
    finally:
        for h in holders:
            h.close()
        s.request("quit")
        s.close()


FLEETS = 4  # processes holding the broadcast's recipient nodes


def small_keys(tmp: Path, count: int) -> list[Path]:
    """``count`` RSA-2048 private keys as PEM files (recipients of the broadcast case)."""
    keys_dir = tmp / "fleetkeys"
    keys_dir.mkdir()
    with ProcessPoolExecutor(2) as pool:
        pems = list(pool.map(_gen_small, range(count)))
    key_files = []
    for i, (private, _) in enumerate(pems):
        key_files.append(keys_dir / f"f{i}.pem")
        key_files[-1].write_bytes(private)
    return key_files


def broadcast_warm(tmp: Path, hub_key, key_files, rounds: int = 5, sync: str = "full") -> dict:
    """Node ``bhub`` broadcasts to ``count`` warm peers; the time until all acked.

    The recipients are real nodes, FLEETS processes of them (bench/fleet_worker.py), each
    with its own home and store (defaults: store_sync "full") and an RSA-2048 key (the
    protocol's minimum; only the first, warming broadcast makes handshakes), each on its
    own loopback address 127.0.1.N (see fleet_worker). One warming
    broadcast opens every session; then ``rounds`` measured ones, each timed from the
    ``Node.broadcast`` call until the hub has seen every copy delivered."""
    count = len(key_files)
    settings = {"store_sync": sync}
    hub = node(f"bhub-{sync}", tmp, hub_key[0], settings)
    fleets = []
    try:
        for f in range(FLEETS):
            mine = key_files[f::FLEETS]
            if mine:
                argv = [FLEET_WORKER, "--dir", tmp / f"fleet-{sync}", "--keys", *mine]
                argv += ["--settings", json.dumps(settings)]
                argv += ["--hub-pem", hub_key[1], "--hub-port", hub.port]
                argv += ["--first-address", 1 + f * (count // FLEETS + 1)]
                fleets.append(Proc(f"fleet{f}-{sync}", argv, tmp))
        members = [m for fl in fleets for m in fl.line(120 + count)["nodes"]]
        for m in members:
            hub.request("add_peer", pem=m["pem"], address=f"{m['host']}:{m['port']}")
        warm = hub.request("broadcast", timeout=20 + count)
        rounds_ms = [1000 * hub.request("broadcast")["seconds"] for _ in range(rounds)]
        return {
            "peers": len(members),
            "warm_ms": 1000 * warm["seconds"],
            "rounds_ms": rounds_ms,
            "median_ms": sorted(rounds_ms)[len(rounds_ms) // 2],
            "hub_sessions": hub.request("stats")["node"]["sessions"],
        }
    finally:
        hub.request("quit")
        hub.close()
        for fl in fleets:
            fl.close()


def sync_normal(tmp: Path, keys, n: int, lat_n: int) -> dict:
    """Throughput and latency again between two fresh nodes with store_sync = "normal"
    (safe against a crash of Enclave, not against power loss), for the side-by-side table."""
    say('store_sync = "normal": nodes An, Bn; throughput, then latency')
    a = node("An", tmp, keys["alice"][0], {"store_sync": "normal"})
    b = node("Bn", tmp, keys["bob"][0], {**B_SETTINGS, "store_sync": "normal"})
    try:
        a.request("add_peer", pem=keys["bob"][1].read_text(), address=f"127.0.0.1:{b.port}")
        b.request("add_peer", pem=keys["alice"][1].read_text(), address=f"127.0.0.1:{a.port}")
        a.request("warm", peer_fp=b.fp)
        a.request("throughput", peer_fp=b.fp, n=min(n, 2000), prefix="w")
        return {
            "throughput": enclave_throughput(a, b, n),
            "latency": enclave_latency(a, b, 1000.0, lat_n),
        }
    finally:
        a.request("quit")
        b.request("quit")
        a.close()
        b.close()


def one_contact_flooding(tmp: Path, keys, n: int) -> dict:
    """H's latency to V (default settings) at HONEST_RATE, with F quiet, then with F
    flooding V as one of its contacts (ref_worker ``flood``). V's key is the hub's, H's
    alice's and F's the dialer's, each in a home of its own."""
    v = node("V", tmp, keys["hub"][0])
    h = node("H", tmp, keys["alice"][0])
    flooder = None
    try:
        h.request("add_peer", pem=keys["hub"][1].read_text(), address=f"127.0.0.1:{v.port}")
        v.request("add_peer", pem=keys["alice"][1].read_text(), address=f"127.0.0.1:{h.port}")
        v.request("add_peer", pem=keys["dialer"][1].read_text(), address=None)
        h.request("warm", peer_fp=v.fp)
        quiet = enclave_latency(h, v, HONEST_RATE, n)
        args = ["flood", "--key-file", keys["dialer"][0], "--peer-pem", keys["hub"][1]]
        flooder = ref("flood", tmp, *args, "--port", v.port, "--n", 1024)
        flooder.line(60)  # {"ev": "flooding"}: established, writing
        time.sleep(0.5)  # past F's first burst: the figure is the steady flood
        cpu_v, t0 = v.request("cpu")["threads"], time.monotonic()
        flooding = enclave_latency(h, v, HONEST_RATE, n)
        seconds = time.monotonic() - t0
        cpu = cpu_delta(cpu_v, v.request("cpu")["threads"], seconds)
        stats = v.request("stats")["node"]
        flooder.proc.stdin.close()
        sent = flooder.line(60)
        return {
            "rate": HONEST_RATE,
            "quiet": quiet,
            "flooding": flooding,
            "flooder": {k: sent[k] for k in ("sent", "acked", "throttles", "seconds", "closed")},
            "cpu_share_V": cpu,
            "v_throttled": stats["throttled"],
        }
    finally:
        if flooder is not None:
            flooder.close()
        for p in (v, h):
            p.request("quit")
            p.close()


def handshake_flood(tmp: Path, keys, rounds: int, seconds: float) -> dict:
    """An honest contact's first message (connect to delivered) to node W, ``rounds``
    new sessions, first quiet, then while two stranger processes flood W with junk HS1s
    claiming that contact, each from FLOOD_ADDRESSES addresses of its own. W keeps every
    default but the per-peer handshake bucket (the honest contact opens ``rounds``
    sessions in a row; at the default it would be told "busy" after 6)."""
    w = node("W", tmp, keys["hub"][0], HS_FLOOD_SETTINGS)
    floods = []
    try:
        # The contact lives at 127.0.0.1, where its sessions come from; the floods
        # come from 127.1.x.y and 127.2.x.y.
        w.request("add_peer", pem=keys["dialer"][1].read_text(), address="127.0.0.1:9")
        honest = ["first-messages", "--key-file", keys["dialer"][0], "--peer-pem", keys["hub"][1]]
        honest += ["--port", w.port, "--n", rounds]
        quiet = _first_messages(tmp, honest, "quiet")
        for k in (1, 2):
            flood = ["hs-flood", "--peer-pem", keys["hub"][1], "--claim-pem", keys["dialer"][1]]
            flood += ["--port", w.port, "--first-address", k, "--addresses", FLOOD_ADDRESSES]
            flood += ["--concurrency", 32, "--seconds", seconds]
            floods.append(ref(f"hs-flood-{k}", tmp, *flood))
        for f in floods:
            f.line(60)  # {"ev": "flooding"}
        time.sleep(1.0)  # let the floods drain the global verify budget first
        closed_before = w.request("stats")["node"]["closed"]
        flooded = _first_messages(tmp, honest, "flooded")
        closed_after = w.request("stats")["node"]["closed"]
        for f in floods:
            f.proc.stdin.close()
        sent = [f.line(seconds + 60) for f in floods]
        refused = {
            k: v - closed_before.get(k, 0)
            for k, v in closed_after.items()
            if k in ("verify_budget", "bad_signature") and v > closed_before.get(k, 0)
        }
        return {
            "rounds": rounds,
            "quiet": quiet,
            "flooded": flooded,
            "flood_sent": sum(s["sent"] for s in sent),
            "flood_per_s": sum(s["sent"] / s["seconds"] for s in sent),
            "refused_meanwhile": refused,
        }
    finally:
        for f in floods:
            f.close()
        w.request("quit")
        w.close()


def _first_messages(tmp: Path, args: list, label: str) -> dict:
    p = ref(f"first-messages-{label}", tmp, *args)
    try:
        done = p.line(120)
    finally:
        p.close()
    return {**done["latency"], "outcomes": done["outcomes"]}


def rsa_rate(tmp: Path, key_file: Path, seconds: float) -> dict:
    p = ref("rsa", tmp, "rsa", "--key-file", key_file, "--seconds", seconds)
    try:
        return p.line(60 + 4 * seconds)
    finally:
        p.close()


def handshakes(tmp: Path, b: Proc, keys, seconds: float, concurrency: int) -> dict:
    before = b.request("stats")["node"]["handshakes"]
    cpu_b = b.request("cpu")["threads"]
    p = ref(
        "dial",
        tmp,
        "dial",
        "--key-file",
        keys["dialer"][0],
        "--peer-pem",
        keys["bob"][1],
        "--port",
        b.port,
        "--seconds",
        seconds,
        "--concurrency",
        concurrency,
    )
    try:
        r = p.line(120 + seconds)
    finally:
        p.close()
    r.pop("ev")
    # The figure is what the node established (it verified each initiator's Finished);
    # the last few HS3 may still be in flight when the dialer reports.
    deadline = time.monotonic() + 5
    while True:
        after = b.request("stats")["node"]
        if after["handshakes"] - before >= r["ok"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    r["node_handshakes"] = after["handshakes"] - before
    r["node_closed"] = after["closed"]
    r["rate"] = r["node_handshakes"] / r["seconds"]
    r["cpu_share_B"] = cpu_delta(cpu_b, b.request("cpu")["threads"], r["seconds"])
    r["concurrency"] = concurrency
    return r


def stream_reference(tmp: Path, kind: str, mode: str, n: int, rate: float = 0.0) -> dict:
    server = ref(f"{kind}-server", tmp, "stream-server", "--kind", kind)
    try:
        port = server.line(30)["port"]
        args = ["stream-client", "--kind", kind, "--mode", mode, "--port", port, "--n", n]
        client = ref(f"{kind}-client", tmp, *args, "--rate", rate)
        try:
            done = client.line(120 + n / 1000)
        finally:
            client.close()
        conn = server.line(30)
    finally:
        server.close()
    if conn["received"] != n:
        raise RuntimeError(f"{kind} server got {conn['received']} of {n}")
    if mode == "throughput":
        return {"n": n, "seconds": done["seconds"], "rate": done["rate"]}
    return {"rate": rate, **conn["latency"]}


def v1_reference(tmp: Path, keys, mode: str, n: int, rate: float = 0.0) -> dict:
    server = ref(
        "v1-server",
        tmp,
        "v1-server",
        "--key-file",
        keys["bob"][0],
        "--peer-pem",
        keys["alice"][1],
        "--expect",
        n,
    )
    try:
        port = server.line(30)["port"]
        args = ["v1-client", "--key-file", keys["alice"][0], "--peer-pem", keys["bob"][1]]
        args += ["--mode", mode, "--port", port, "--n", n, "--rate", rate, "--concurrency", 4]
        client = ref("v1-client", tmp, *args)
        try:
            done = client.line(120 + n / 10)
        finally:
            client.close()
        conn = server.line(60)
    finally:
        server.close()
    if conn["count"] != n:
        raise RuntimeError(f"v1 server opened {conn['count']} of {n} ({conn['errors']} errors)")
    if mode == "throughput":
        seconds = (conn["last"] - done["start_ns"]) / 1e9
        return {"n": n, "seconds": seconds, "rate": n / seconds}
    return {"rate": rate, **conn["latency"]}


# --- profiles -------------------------------------------------------------------------------


def profile_cprofile(a: Proc, b: Proc, n: int, tmp: Path) -> dict:
    a.request("profile", on=True)
    b.request("profile", on=True)
    r = a.request("throughput", timeout=120 + n / 200, peer_fp=b.fp, n=n, prefix="p")
    files = {
        "A": a.request("profile", on=False, out=str(tmp / "A")),
        "B": b.request("profile", on=False, out=str(tmp / "B")),
    }
    out = {"n": n, "seconds": r["seconds"], "rate": n / r["seconds"]}
    for side, paths in files.items():
        for thread, path in paths.items():
            if thread == "re":
                continue
            out[f"{side} {thread}"] = top_cprofile(path, r["seconds"])
    return out


def top_cprofile(path: str, seconds: float, count: int = 15) -> list[dict]:
    stats = pstats.Stats(path)
    rows = []
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():
        rows.append(
            {
                "function": f"{func} ({_short(file)}:{line})",
                "calls": ncalls,
                "self_s": round(tottime, 3),
                "cum_s": round(cumtime, 3),
                "self_share": round(tottime / seconds, 3),
            }
        )
    rows.sort(key=lambda r: r["self_s"], reverse=True)
    return rows[:count]


def _short(file: str) -> str:
    for marker in ("/enclave/", "/site-packages/", "/lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def profile_pyspy(a: Proc, b: Proc, n: int, tmp: Path, rate: int = 250) -> dict:
    spies = {}
    for side, p in (("A", a), ("B", b)):
        out = tmp / f"{side}.pyspy.txt"
        cmd = ["py-spy", "record", "-p", str(p.pid), "-r", str(rate), "-f", "raw"]
        cmd += ["-o", str(out), "--nonblocking", "--threads", "--function"]
        spies[side] = (
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            out,
        )
    time.sleep(1.0)  # py-spy attaches
    r = a.request("throughput", timeout=120 + n / 500, peer_fp=b.fp, n=n, prefix="p")
    result = {"n": n, "seconds": r["seconds"], "rate": n / r["seconds"], "sample_rate": rate}
    for side, (spy, out) in spies.items():
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
        result[side] = top_pyspy(out)
    return result


def top_pyspy(path: Path, count: int = 18) -> dict:
    """Self samples by leaf function (Python frames; C calls count in their caller),
    and inclusive samples by function, as shares of all samples of the process."""
    leaf, inclusive, threads = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    if not path.exists():
        return {"error": "py-spy wrote nothing"}
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        k = int(samples)
        total += k
        threads[frames[0]] += k
        leaf[frames[-1]] += k
        for f in set(frames[1:]):
            inclusive[f] += k
    return {
        "samples": total,
        "threads": {t: round(k / total, 3) for t, k in threads.most_common()},
        "self": [(f, round(k / total, 3)) for f, k in leaf.most_common(count)],
        "inclusive": [(f, round(k / total, 3)) for f, k in inclusive.most_common(count)],
    }


# --- the run -----------------------------------------------------------------------------------


def fsync_probe(folder: Path, count: int = 200) -> dict:
    """What one durable commit costs at least here: write 4 KiB + fsync, in the folder
    the nodes' stores live in (SQLite runs synchronous=FULL: one fsync per commit)."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    times = []
    try:
        for _ in range(count):
            os.write(fd, b"x" * 4096)
            t = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    return percentiles_us(times)


def source_state() -> dict:
    """Which code was measured: the commit, and any files of the package that differ
    from it (read-only git queries). Outside a git checkout (e.g. a ``git archive``
    export), ``ENCLAVE_SOURCE_COMMIT`` names the commit it was exported from."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "--short", "HEAD")
    if head is None:
        return {"commit": os.environ.get("ENCLAVE_SOURCE_COMMIT"), "export": True}
    changed = git("status", "--porcelain", "--", "enclave", "setup.py")
    return {"commit": head, "uncommitted": changed.splitlines() if changed else []}


def machine() -> dict:
    from importlib.metadata import version

    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from cryptography.hazmat.backends.openssl import backend

    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "cryptography": version("cryptography"),
        "openssl": backend.openssl_version_text(),
        "uvloop": version("uvloop"),
        "msgpack": version("msgpack"),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def run(args) -> dict:
    quick = args.quick
    n = 5_000 if quick else 100_000
    lat_n = 1_000 if quick else 5_000
    v1_n = 100 if quick else 500
    hs_seconds = 2.0 if quick else 6.0
    result: dict = {"command": " ".join(["python", "bench/e2e.py", *sys.argv[1:]])}
    result["machine"] = machine()
    result["source"] = source_state()
    result["sizes"] = {"throughput_n": n, "latency_n": lat_n, "latency_rate": 1000, "v1_n": v1_n}
    t_start = time.monotonic()
    parts: dict = {}  # seconds per part of the run
    with tempfile.TemporaryDirectory(prefix="enclave-e2e-") as tmp_name:
        tmp = Path(tmp_name)
        mode = "quick" if quick else "full"
        say(f"microbenchmarks ({mode}): pytest-benchmark on {', '.join(MICRO_FILES)}")
        result["micro"] = microbenchmarks(tmp, quick)
        parts["microbenchmarks"] = result["micro"]["seconds"]
        say(f"microbenchmarks done in {parts['microbenchmarks']:.0f} s")
        t_nodes = time.monotonic()
        result["fsync"] = fsync_probe(tmp)
        idle_peers = 3 if quick else IDLE_PEERS
        idle_seconds = 2.0 if quick else IDLE_SECONDS
        say(f"keys: {3 + 1 + idle_peers} x RSA-4096")
        peer_names = [f"p{i}" for i in range(idle_peers)]
        keys = make_keys(tmp, ["alice", "bob", "dialer", "hub", *peer_names])
        say("enclave --help, 7 runs")
        result["help"] = help_wall()
        enclave: dict = {}
        say("nodes A, B")
        a = node("A", tmp, keys["alice"][0])
        b = node("B", tmp, keys["bob"][0], B_SETTINGS)
        try:
            a.request("add_peer", pem=keys["bob"][1].read_text(), address=f"127.0.0.1:{b.port}")
            b.request("add_peer", pem=keys["alice"][1].read_text(), address=f"127.0.0.1:{a.port}")
            b.request("add_peer", pem=keys["dialer"][1].read_text(), address=None)
            enclave["first_message_s"] = a.request("warm", peer_fp=b.fp)["seconds"]
            a.request("throughput", peer_fp=b.fp, n=min(n, 2000), prefix="w")  # warm
            say(f"enclave throughput, {n:,} messages")
            enclave["throughput"] = enclave_throughput(a, b, n)
            say(f"enclave latency, {lat_n:,} messages at 1,000 msg/s")
            enclave["latency"] = enclave_latency(a, b, 1000.0, lat_n)
            # The RSA rate right before and right after the handshakes (the machine is
            # shared: its rate drifts); the handshake target uses their mean.
            say("RSA-4096 private-op rate, then handshakes, then the rate again")
            rsa_before = rsa_rate(tmp, keys["alice"][0], 1.0 if quick else 2.0)
            say(f"enclave handshakes, {hs_seconds:.0f} s")
            enclave["handshakes"] = handshakes(tmp, b, keys, hs_seconds, args.hs_concurrency)
            rsa_after = rsa_rate(tmp, keys["alice"][0], 1.0 if quick else 2.0)
            result["rsa"] = {
                "bits": rsa_before["bits"],
                "before": rsa_before,
                "after": rsa_after,
                **{
                    k: (rsa_before[k] + rsa_after[k]) / 2
                    for k in ("ops_per_s_1_threads", "ops_per_s_2_threads")
                },
            }
            enclave["normal"] = sync_normal(tmp, keys, n, lat_n)
            say(f"idle hub with {idle_peers} peers, {idle_seconds:.0f} s; broadcast to them")
            enclave["idle"] = idle_and_broadcast(tmp, keys, keys["hub"], idle_seconds, idle_peers)
            peers = 10 if quick else 100
            say(f"broadcast to {peers} warm peers, store_sync full, then normal")
            fleet_keys = small_keys(tmp, peers)
            enclave["broadcast"] = broadcast_warm(tmp, keys["hub"], fleet_keys)
            enclave["broadcast_normal"] = broadcast_warm(
                tmp, keys["hub"], fleet_keys, sync="normal"
            )
            flood_n = 200 if quick else 1_000
            say(f"one contact flooding: another's latency, {flood_n} messages at 200 msg/s")
            enclave["flood"] = one_contact_flooding(tmp, keys, flood_n)
            hs_rounds = 10 if quick else 40
            say(f"handshake flood: {hs_rounds} first messages, quiet, then beside two floods")
            enclave["hs_flood"] = handshake_flood(tmp, keys, hs_rounds, 60.0)
            count = 200 if quick else 10_000
            say(f"{count:,} idle sessions on one node")
            enclave["sessions"] = idle_sessions(tmp, keys["hub"], count)
            if args.profile:
                say(f"profile ({args.profile}), {n:,} messages")
                fn = profile_cprofile if args.profile == "cprofile" else profile_pyspy
                result["profile"] = {"tool": args.profile, **fn(a, b, n, tmp)}
        finally:
            a.request("quit")
            b.request("quit")
            a.close()
            b.close()
        result["enclave"] = enclave
        parts["node cases"] = round(time.monotonic() - t_nodes, 1)
        say(f"node cases done in {parts['node cases']:.0f} s")
        t_refs = time.monotonic()
        refs: dict = {"raw": {}, "raw-batch": {}, "tls": {}, "v1": {}}
        for kind in ("raw", "raw-batch", "tls"):
            say(f"reference {kind}: throughput, then latency")
            refs[kind]["throughput"] = stream_reference(tmp, kind, "throughput", n)
            refs[kind]["latency"] = stream_reference(tmp, kind, "latency", lat_n, 1000.0)
        say(f"reference v1 (seed's method): {v1_n} messages, then latency at 50 msg/s")
        refs["v1"]["throughput"] = v1_reference(tmp, keys, "throughput", v1_n)
        refs["v1"]["latency"] = v1_reference(tmp, keys, "latency", v1_n // 5, 50.0)
        result["references"] = refs
        parts["references"] = round(time.monotonic() - t_refs, 1)
        say(f"references done in {parts['references']:.0f} s")
    result["parts_seconds"] = parts
    result["seconds"] = round(time.monotonic() - t_start, 1)
    result["figures"] = figures(result)
    return result


REFS = ("raw", "raw-batch", "tls", "v1")
REF_NAMES = {"raw": "raw/frame", "raw-batch": "raw/batch", "tls": "TLS 1.3", "v1": "seed v1"}


def figures(r: dict) -> list[dict]:
    """The table: one row per figure, with its ratio to each reference."""
    e, refs = r["enclave"], r["references"]
    rows = []
    tp = e["throughput"]["rate"]
    rows.append(
        {
            "figure": "durable throughput, 100 B (msg/s)",
            "enclave": tp,
            "refs": {k: refs[k]["throughput"]["rate"] for k in REFS},
            "ratio": {k: tp / refs[k]["throughput"]["rate"] for k in REFS},
            "target": f">= {TARGETS['throughput']:,}",
            "met": tp >= TARGETS["throughput"],
        }
    )
    for q, target in (("p50_us", TARGETS["p50_us"]), ("p99_us", TARGETS["p99_us"])):
        value = e["latency"][q]
        rows.append(
            {
                "figure": f"one-way latency @1,000 msg/s, {q[:-3]} (us)",
                "enclave": value,
                "refs": {k: refs[k]["latency"][q] for k in REFS},
                "ratio": {k: value / refs[k]["latency"][q] for k in REFS},
                "target": f"<= {target:,}",
                "met": value <= target,
            }
        )
    value = e["latency"]["p999_us"]
    rows.append(
        {
            "figure": "one-way latency @1,000 msg/s, p999 (us)",
            "enclave": value,
            "refs": {k: refs[k]["latency"]["p999_us"] for k in REFS},
            "ratio": {k: value / refs[k]["latency"]["p999_us"] for k in REFS},
            "target": "-",
            "met": None,
        }
    )
    rsa2 = r["rsa"]["ops_per_s_2_threads"]
    allowed = rsa2 / 4  # 2 private ops per side, both sides on this machine's 2 cores
    hs = e["handshakes"]["rate"]
    rows.append(
        {
            "figure": "new sessions per second (handshakes/s)",
            "enclave": hs,
            "refs": {"rsa_allowed": allowed},
            "ratio": {"rsa_allowed": hs / allowed},
            "target": f">= {TARGETS['handshake_share']:.0%} of RSA-allowed",
            "met": hs >= TARGETS["handshake_share"] * allowed,
        }
    )
    nm = e["normal"]
    tp_n = nm["throughput"]["rate"]
    rows.append(
        {
            "figure": 'durable throughput, store_sync="normal"',
            "enclave": tp_n,
            "refs": {k: refs[k]["throughput"]["rate"] for k in REFS},
            "ratio": {k: tp_n / refs[k]["throughput"]["rate"] for k in REFS},
            "target": f">= {TARGETS['throughput']:,}",
            "met": tp_n >= TARGETS["throughput"],
        }
    )
    for q, target in (("p50_us", TARGETS["p50_us"]), ("p99_us", TARGETS["p99_us"])):
        value = nm["latency"][q]
        rows.append(
            {
                "figure": f'latency @1,000 msg/s, {q[:-3]}, store_sync="normal"',
                "enclave": value,
                "refs": {k: refs[k]["latency"][q] for k in REFS},
                "ratio": {k: value / refs[k]["latency"][q] for k in REFS},
                "target": f"<= {target:,}",
                "met": value <= target,
            }
        )
    idle, bc = e["idle"], e["broadcast"]
    rows.append(
        {
            "figure": f"broadcast to {bc['peers']} warm peers, all acked (ms, median)",
            "enclave": bc["median_ms"],
            "target": f"<= {TARGETS['broadcast_ms']} for 100",
            "met": bc["peers"] >= 100 and bc["median_ms"] <= TARGETS["broadcast_ms"],
        }
    )
    bcn = e["broadcast_normal"]
    rows.append(
        {
            "figure": f'broadcast to {bcn["peers"]} warm peers, store_sync="normal" (ms)',
            "enclave": bcn["median_ms"],
            "target": f"<= {TARGETS['broadcast_ms']} for 100",
            "met": bcn["peers"] >= 100 and bcn["median_ms"] <= TARGETS["broadcast_ms"],
        }
    )
    rows.append(
        {
            "figure": f"idle node with {idle['peers']} peers, CPU (% of a core)",
            "enclave": 100 * idle["idle_cpu_share"],
            "target": f"< {100 * TARGETS['idle_cpu']:.0f}%",
            "met": idle["idle_cpu_share"] < TARGETS["idle_cpu"],
        }
    )
    hp = r["help"]["median_ms"]
    rows.append(
        {
            "figure": "enclave --help, wall (ms, median of 7)",
            "enclave": hp,
            "target": f"<= {TARGETS['help_ms']}",
            "met": hp <= TARGETS["help_ms"],
        }
    )
    fl = e["flood"]
    for q in ("p50_us", "p99_us"):
        quiet, value = fl["quiet"][q], fl["flooding"][q]
        factor = TARGETS["flood_factor"]
        rows.append(
            {
                "figure": f"another contact's latency, one flooding, {q[:-3]} (us)",
                "enclave": value,
                "target": f"<= {factor:g}x quiet ({quiet:,.0f})",
                "met": value <= factor * quiet,
            }
        )
    hf = e["hs_flood"]
    for q in ("p50_us", "p99_us"):
        rows.append(
            {
                "figure": f"first message, connect to delivered, handshake flood, {q[:-3]} (ms)",
                "enclave": hf["flooded"][q] / 1000,
                "target": f"<= {TARGETS['hs_flood_s'] * 1000:,.0f} (quiet"
                f" {hf['quiet'][q] / 1000:,.1f})",
                "met": hf["flooded"][q] <= TARGETS["hs_flood_s"] * 1e6
                and hf["flooded"]["outcomes"].get("ok", 0) == hf["rounds"],
            }
        )
    ss = e["sessions"]
    rows.append(
        {
            "figure": f"{ss['sessions']:,} idle sessions on one node, RSS per session (KB)",
            "enclave": ss["rss_per_session_kb"],
            "target": f"10,000 at <= {TARGETS['idle_session_kb']} KB",
            "met": ss["sessions"] >= 10_000
            and ss["rss_per_session_kb"] <= TARGETS["idle_session_kb"],
        }
    )
    return rows + micro_figures(r["micro"])


def micro_figures(micro: dict) -> list[dict]:
    """The microbenchmark rows: each _fast pair's speed-up against its target, then each
    per-op case in ns. A quick run's rows are marked and not judged."""
    quick = micro["mode"] == "quick"
    target = TARGETS["fast_speedup"]
    rows = []
    for pair in micro["twins"]:
        speedup = pair["speedup"]
        rows.append(
            {
                "figure": f"_fast native vs pure: {pair['case']}",
                "kind": "twin",
                "case": pair["case"],
                "enclave": speedup,
                "native_ns": _to_ns(pair["native_s"]),
                "pure_ns": _to_ns(pair["pure_s"]),
                "target": f">= {target:g}x",
                "met": None if quick else speedup is not None and speedup >= target,
                "quick": quick,
            }
        )
    for case in micro["per_op"]:
        rows.append(
            {
                "figure": f"{case['case']}, per {case['each']} (ns)",
                "kind": "per_op",
                "case": case["case"],
                "enclave": _to_ns(case["per_op_s"]),
                "each": case["each"],
                "target": "-",
                "met": None,
                "quick": quick,
            }
        )
    return rows


def _to_ns(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e9


def say(text: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _fmt(x) -> str:
    if x is None:
        return "not measured yet"
    if isinstance(x, float) and x < 10:
        return f"{x:.2f}"
    return f"{x:,.0f}"


def print_table(r: dict) -> None:
    m = r["machine"]
    print(f"\n{r['command']}   ({m['nproc']} x {m['cpu']}, Python {m['python']}, {m['date']})")
    print(f"code: {r['source']}")
    heads = " ".join(f"{REF_NAMES[k]:>10}" for k in REFS)
    print(f"{'figure':<48} {'Enclave':>16} {heads}  target")
    for row in r["figures"]:
        if "kind" in row:  # microbenchmark rows: their own sections below
            continue
        refs, ratio = row.get("refs", {}), row.get("ratio", {})
        met = {True: "met", False: "NOT met", None: ""}[row["met"]]
        if "rsa_allowed" in refs:
            cells = f"{'RSA allows ' + _fmt(refs['rsa_allowed']):>43}"
            ratios = f"{ratio['rsa_allowed']:.0%} of it"
        else:
            cells = " ".join(f"{_fmt(refs[k]):>10}" if k in refs else f"{'':>10}" for k in REFS)
            ratios = " / ".join(f"{ratio[k]:.3g}x" for k in REFS) if ratio else ""
        print(f"{row['figure']:<48} {_fmt(row['enclave']):>16} {cells}  {row['target']} {met}")
        if ratios:
            print(f"{'':<48} {'ratio: ' + ratios:>60}")
    tp = r["enclave"]["throughput"]
    print(f"CPU share during throughput (1.0 = one core): {json.dumps(tp['cpu_share'])}")
    hs = r["enclave"]["handshakes"]
    print(
        f"CPU share during handshakes: B {json.dumps(hs['cpu_share_B'])},"
        f" initiator process {hs['initiator_cpu_share']}"
    )
    rsa = r["rsa"]
    print(
        f"RSA-{rsa['bits']} private ops/s (mean of before/after the handshakes):"
        f" {rsa['ops_per_s_1_threads']:,.0f} on 1 thread, {rsa['ops_per_s_2_threads']:,.0f} on 2"
        f" (before {rsa['before']['ops_per_s_2_threads']:,.0f}, after"
        f" {rsa['after']['ops_per_s_2_threads']:,.0f}); handshake outcomes: {hs['outcomes']}"
    )
    fs = r["fsync"]
    print(
        f"fsync of 4 KiB in the stores' folder: p50 {fs['p50_us']:,.0f} us, p99 {fs['p99_us']:,.0f} us"
    )
    for label, lat in (
        ('store_sync="full"', r["enclave"]["latency"]),
        ('store_sync="normal"', r["enclave"]["normal"]["latency"]),
    ):
        print(f"latency segments, {label}, p50 / p99 (us):")
        for name, seg in lat["segments"].items():
            print(f"   {name:<30} {seg['p50_us']:9,.0f} {seg['p99_us']:9,.0f}")
    tpn = r["enclave"]["normal"]["throughput"]
    print(f'CPU share during throughput, store_sync="normal": {json.dumps(tpn["cpu_share"])}')
    idle = r["enclave"]["idle"]
    print(
        f"idle hub: {idle['sessions']} sessions, {idle['idle_cpu_share']:.2%} of a core over"
        f" {idle['idle_seconds']:.1f} s, RSS {idle['hub_rss_kb']:,} KB; broadcasts (ms, first"
        f" is the warm-up): {[round(x, 2) for x in idle['broadcast_ms']]}"
    )
    for label in ("broadcast", "broadcast_normal"):
        bc = r["enclave"][label]
        print(
            f"{label} to {bc['peers']} warm peers ({bc['hub_sessions']} sessions): rounds (ms)"
            f" {[round(x, 1) for x in bc['rounds_ms']]}, the warming one {bc['warm_ms']:.0f} ms"
        )
    fl = r["enclave"]["flood"]
    f = fl["flooder"]
    print(
        f"one contact flooding: H -> V @{fl['rate']:.0f} msg/s, p50 / p99 (us) quiet"
        f" {fl['quiet']['p50_us']:,.0f} / {fl['quiet']['p99_us']:,.0f}, flooding"
        f" {fl['flooding']['p50_us']:,.0f} / {fl['flooding']['p99_us']:,.0f}; F sent"
        f" {f['sent']:,} chats in {f['seconds']:.1f} s, {f['acked']:,} acked, told"
        f" {f['throttles']} (1 rate, 2 volume, 3 storage); V's CPU {json.dumps(fl['cpu_share_V'])}"
    )
    hf = r["enclave"]["hs_flood"]
    print(
        f"handshake flood: first message, connect to delivered, p50 / p99 (ms) quiet"
        f" {hf['quiet']['p50_us'] / 1000:,.1f} / {hf['quiet']['p99_us'] / 1000:,.1f},"
        f" flooded {hf['flooded']['p50_us'] / 1000:,.1f} / {hf['flooded']['p99_us'] / 1000:,.1f}"
        f" ({hf['flooded']['outcomes']}); two floods sent {hf['flood_sent']:,} junk HS1s"
        f" ({hf['flood_per_s']:,.0f}/s), refused meanwhile {hf['refused_meanwhile']}"
    )
    ss = r["enclave"]["sessions"]
    print(
        f"idle sessions: {ss['sessions']:,} of {ss['requested']:,} established in"
        f" {ss['seconds_to_establish']:.1f} s from {ss['initiator_keys']} keys; RSS"
        f" {ss['rss_before_kb']:,} -> {ss['rss_after_kb']:,} KB; outcomes {ss['outcomes']}"
    )
    hp = r["help"]
    print(f"enclave --help: median {hp['median_ms']:.0f} ms, min {hp['min_ms']:.0f} ms")
    print_micro(r)
    parts = ", ".join(f"{name} {s:.0f} s" for name, s in r["parts_seconds"].items())
    print(f"whole run: {r['seconds']} s ({parts})")


def print_micro(r: dict) -> None:
    m = r["micro"]
    note = " QUICK: a few rounds per case, rows only, not figures" if m["mode"] == "quick" else ""
    rows = [row for row in r["figures"] if row.get("kind") == "twin"]
    print(
        f"\n_fast native vs pure, median per operation (pytest-benchmark {m['pytest_benchmark']},"
        f" {' '.join(m['options'])}; {m['seconds']:.0f} s){note}"
    )
    print(f"{'pair: case':<56} {'native':>9} {'pure':>9} {'speed-up':>9}  target")
    for row in rows:
        met = {True: "met", False: "NOT met", None: ""}[row["met"]]
        speedup = "-" if row["enclave"] is None else f"{row['enclave']:.1f}x"
        print(
            f"{row['case']:<56}"
            f" {_ns_cell(row['native_ns']):>9} {_ns_cell(row['pure_ns']):>9} {speedup:>9}"
            f"  {row['target']} {met}"
        )
    print(f"\nrecords and codec, median per frame or chat{note}")
    for row in r["figures"]:
        if row.get("kind") == "per_op":
            print(f"{row['case']:<56} {_ns_cell(row['enclave']):>9} per {row['each']}")


def _ns_cell(ns: float | None) -> str:
    return "-" if ns is None else f"{ns:,.0f} ns"


def print_profile(p: dict) -> None:
    print(
        f"\nprofile ({p['tool']}) of a throughput pass: {p['n']:,} messages at {p['rate']:,.0f} msg/s"
    )
    for key, value in p.items():
        if isinstance(value, list):
            print(f"-- {key}: top self time (s, share of the pass's wall time)")
            for row in value:
                print(
                    f"   {row['self_s']:7.3f} {row['self_share']:6.1%} {row['calls']:>9} {row['function']}"
                )
        elif isinstance(value, dict) and "self" in value:
            print(f"-- {key}: {value['samples']} samples; threads {value['threads']}")
            for f, share in value["self"]:
                print(f"   self {share:6.1%}  {f}")
            for f, share in value["inclusive"][:10]:
                print(f"   incl {share:6.1%}  {f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes (CI)")
    parser.add_argument("--out", default=str(HERE / "results" / "e2e.json"))
    parser.add_argument("--profile", choices=["cprofile", "py-spy"])
    parser.add_argument(
        "--hs-concurrency",
        type=int,
        default=8,
        help="handshakes in flight at once (node B admits crypto_queue = 8 by default)",
    )
    args = parser.parse_args(argv)
    result = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print_table(result)
    if "profile" in result:
        print_profile(result["profile"])
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
