"""File transfer: throughput next to TLS 1.3 and AES-256-GCM, chats and memory during
a transfer, and one file to many contacts.

Nodes FP (alice's key) and FQ (bob's) in their own processes on loopback, each taking
any file without asking (``file_auto_accept_bytes`` 1 TiB, ``file_disk_margin_bytes``
0). One random file of ``file_mib`` MiB (full 2,048, quick 256):

1. FP ``Node.send_file`` to FQ, timed from the call (the digest included) to FQ's
   FileChanged "delivered" (node_worker ``send_file``, ``files_done``); both nodes'
   VmRSS sampled every 0.2 s from /proc meanwhile, against a reading just before.
   Beside it in the same run, the same byte count: TLS 1.3 on loopback (Python ssl, a
   self-signed P-256 certificate, one connection, 1 MiB writes, the receiver in its own
   process, timed to its one-byte ack) and AES-256-GCM (``cryptography`` AESGCM,
   256 KiB records, one thread, no I/O), and the disk: the same bytes written to a new
   file by a fresh process, synced every 64 MiB (a receiver at store_sync "full" syncs
   what it wrote before recording it) and not synced (store_sync "normal"): the
   receiver's ceiling here. The source file is synced to disk before it is sent.
2. The same file again while FP sends FQ a chat every 10 ms (node_timing ``pace``);
   latency from FP's submit to FQ showing it (``record``/``received``), for the chats
   submitted before FQ had the file.
3. Nodes FN and FM (the same keys, their own homes) with store_sync "normal": the
   same transfer, the receiver no longer syncing its file (the page cache keeps it
   through a crash of Enclave, not a power loss): what the pipeline itself moves.
4. Node FH (the hub's key) and ``peers`` recipients (bench/fleet_worker.py, each on its
   own loopback address), sessions warmed by one chat to all: a file of
   ``broadcast_mib`` MiB (full 256, quick 64) to one of them, then to all of them in one
   ``send_file_to_many``; wall time of each to the last "delivered" at FH, and FH's
   chunk reads from disk (``file_chunk_reads``) per chunk of the file.

Every file written (the disk references' and the received ones) is kept until the
file cases end, then deleted: on this VM a page-cache page used for the first time
costs ~15x one freed moments before (3-4 ms against 0.2 ms per MiB written), so each
case writes into pages no other case just freed, the references first.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import ssl
import statistics
import threading
import time
from pathlib import Path

from support.tls_helpers import self_signed

from endtoend.measure import process_rss_kb
from endtoend.processes import fleet, introduce, node, small_keys, stop

MIB = 1 << 20
CHAT_RATE = 100.0  # chats/s during the second transfer
RSS_EVERY = 0.2  # seconds between VmRSS samples
TLS_WRITE = MIB
GCM_RECORD = 256 * 1024
FILE_SETTINGS = {"file_auto_accept_bytes": 1 << 40, "file_disk_margin_bytes": 0}
NORMAL_SETTINGS = {**FILE_SETTINGS, "store_sync": "normal"}
DISK_SYNC_EVERY = 64 * MIB
CHUNK = 1 << 20  # enclave.protocol.file_messages.DEFAULT_CHUNK_SIZE


def file_cases(tmp: Path, keys, file_mib: int, broadcast_mib: int, peers: int) -> dict:
    nbytes = file_mib * MIB
    source = random_file(tmp / "file-bench.bin", nbytes)
    out: dict = {"file_mib": file_mib, "full": file_mib >= 2048}
    kept: list[Path] = []
    try:
        _write_cases(tmp, keys, source, nbytes, out, kept)
    finally:
        for path in kept:
            path.unlink(missing_ok=True)
    out["tls"] = tls_throughput(tmp, nbytes)
    out["aesgcm"] = aesgcm_throughput(nbytes)
    t = out["transfer"]
    t["ratio_tls"] = t["mb_s"] / out["tls"]["mb_s"]
    t["ratio_aesgcm"] = t["mb_s"] / out["aesgcm"]["mb_s"]
    t["ratio_disk"] = t["mb_s"] / out["disk"]["mb_s"]
    out["normal"]["ratio_tls"] = out["normal"]["mb_s"] / out["tls"]["mb_s"]
    out["normal"]["ratio_disk"] = out["normal"]["mb_s"] / out["page_cache"]["mb_s"]
    source.unlink()
    bsource = random_file(tmp / "file-bench-broadcast.bin", broadcast_mib * MIB)
    out["broadcast"] = broadcast(tmp, keys["hub"], bsource, peers)
    bsource.unlink()
    return out


@contextlib.contextmanager
def pair(tmp: Path, keys, names: tuple[str, str], settings: dict):
    """Alice's and Bob's keys in two node processes, introduced, a session warm."""
    p = node(names[0], tmp, keys["alice"][0], settings)
    q = node(names[1], tmp, keys["bob"][0], settings)
    try:
        introduce(p, keys["alice"][1], q, keys["bob"][1])
        p.request("warm", peer_fp=q.fp)
        yield p, q
    finally:
        stop(p, q)


def _write_cases(tmp: Path, keys, source: Path, nbytes: int, out: dict, kept: list) -> None:
    """The cases that write the file's bytes at the receiver, references first."""
    for name, sync in (("disk", True), ("page_cache", False)):
        path = tmp / f"file-bench-{name}.bin"
        kept.append(path)
        out[name] = disk_throughput(path, nbytes, sync)
    with pair(tmp, keys, ("FP", "FQ"), FILE_SETTINGS) as (p, q):
        out["transfer"] = transfer(p, q, source, nbytes, kept)
        out["chats"] = chats_during(p, q, source, out["transfer"]["seconds"], kept)
    with pair(tmp, keys, ("FN", "FM"), NORMAL_SETTINGS) as (p, q):
        out["normal"] = transfer(p, q, source, nbytes, kept)


def random_file(path: Path, nbytes: int) -> Path:
    """A file of random bytes, on the disk before it is sent: a user's file is not
    gigabytes of dirty pages the kernel still has to write while the transfer runs."""
    with open(path, "wb") as f:
        for _ in range(nbytes // (16 * MIB)):
            f.write(os.urandom(16 * MIB))
        f.write(os.urandom(nbytes % (16 * MIB)))
        f.flush()
        os.fsync(f.fileno())
    return path


def disk_throughput(path: Path, nbytes: int, sync: bool) -> dict:
    """The receiver's own ceiling here: the same bytes written in 1 MiB blocks to a new
    file on the same disk by a fresh process (as a node's is), synced every
    DISK_SYNC_EVERY bytes and at the end when ``sync`` (store_sync "full" syncs what it
    wrote before recording it), not at all otherwise ("normal")."""
    mp = multiprocessing.get_context("spawn")
    mine, theirs = mp.Pipe()
    writer = mp.Process(target=_disk_writer, args=(str(path), nbytes, sync, theirs))
    writer.start()
    try:
        seconds = mine.recv()
    finally:
        writer.join(60)
    return {"bytes": nbytes, "seconds": seconds, "mb_s": nbytes / seconds / 1e6, "sync": sync}


def _disk_writer(path: str, nbytes: int, sync: bool, conn) -> None:
    block = os.urandom(MIB)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        t0 = time.perf_counter()
        done = 0
        while done < nbytes:
            done += os.write(fd, block[: min(MIB, nbytes - done)])
            if sync and done % DISK_SYNC_EVERY == 0:
                os.fsync(fd)
        if sync:
            os.fsync(fd)
        conn.send(time.perf_counter() - t0)
    finally:
        os.close(fd)


def timeout_for(nbytes: int) -> float:
    return 120 + nbytes / (10 * MIB)  # 10 MiB/s at the slowest


def transfer(p, q, source: Path, nbytes: int, kept: list) -> dict:
    """One send_file, FP to FQ, timed to FQ's "delivered"; both nodes' RSS meanwhile."""
    sampler = RssSampler({"P": p.pid, "Q": q.pid})
    sent = p.request("send_file", path=str(source), peers=[q.fp])
    done = q.request("files_done", timeout=timeout_for(nbytes) + 10, count=1)["done"][-1]
    rss = sampler.stop()
    if done["state"] != "delivered":
        raise RuntimeError(f"the file was not delivered: {done}")
    seconds = done["t"] - sent["t0"]
    stats = p.request("stats")["node"]
    kept.append(Path(done["path"]))
    return {
        "bytes": nbytes,
        "seconds": seconds,
        "mb_s": nbytes / seconds / 1e6,
        "offer_seconds": sent["offered"] - sent["t0"],  # the digest, mostly
        "rss": rss,
        "rss_growth_mib": max(side["growth_mib"] for side in rss.values()),
        "p_file_bytes_sent": stats.get("file_bytes_sent"),
        "p_file_chunk_reads": stats.get("file_chunk_reads"),
    }


def chats_during(p, q, source: Path, expect_seconds: float, kept: list) -> dict:
    """The file again, a chat every 10 ms from FP meanwhile; one-way latency of the chats
    submitted before FQ had the file."""
    n = max(50, int(expect_seconds * 1.2 * CHAT_RATE))
    q.request("record", prefix="C")
    sent = p.request("send_file", path=str(source), peers=[q.fp])
    pace = p.send_command("pace", peer_fp=q.fp, rate=CHAT_RATE, n=n, prefix="C")
    limit = timeout_for(source.stat().st_size) + 10
    done = q.request("files_done", timeout=limit, count=2)["done"][-1]
    paced = p.reply(pace, limit + n / CHAT_RATE)
    got = q.request("received")["times"]
    kept.append(Path(done["path"]))
    during = [got[k] - t for k, t in paced["sent"].items() if t < done["t"] and k in got]
    missing = sum(1 for k in paced["sent"] if k not in got)
    if not during:
        raise RuntimeError("no chat was submitted during the transfer")
    v = sorted(during)
    return {
        "file_seconds": done["t"] - sent["t0"],
        "chats": len(v),
        "missing": missing,
        "p50_ms": 1000 * statistics.median(v),
        "p99_ms": 1000 * v[min(len(v) - 1, int(0.99 * len(v)))],
        "max_ms": 1000 * v[-1],
    }


class RssSampler:
    """VmRSS of some processes, read from /proc every RSS_EVERY s on a thread of this
    process (the measured ones do nothing for it)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before = {name: process_rss_kb(pid) for name, pid in pids.items()}
        self.peak = dict(self.before)
        self.samples = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(RSS_EVERY):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], process_rss_kb(pid))
            self.samples += 1

    def stop(self) -> dict:
        self._done.set()
        self._thread.join()
        return {
            name: {
                "before_mib": self.before[name] / 1024,
                "peak_mib": self.peak[name] / 1024,
                "growth_mib": (self.peak[name] - self.before[name]) / 1024,
                "samples": self.samples,
            }
            for name in self.pids
        }


# --- references ----------------------------------------------------------------------


def _tls_sink(cert: str, key: str, nbytes: int, conn) -> None:
    """The receiving side, in its own process: take ``nbytes``, then ack one byte."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as srv:
        conn.send(srv.getsockname()[1])
        raw, _ = srv.accept()
        with ctx.wrap_socket(raw, server_side=True) as s:
            buf = bytearray(TLS_WRITE)
            got = 0
            while got < nbytes:
                n = s.recv_into(buf)
                if not n:
                    break
                got += n
            s.sendall(b"k")
            conn.send(got)


def tls_throughput(tmp: Path, nbytes: int) -> dict:
    cert, key = self_signed(tmp / "tls-bench")  # the tests' helper (support.tls_helpers)
    mp = multiprocessing.get_context("spawn")
    mine, theirs = mp.Pipe()
    sink = mp.Process(target=_tls_sink, args=(str(cert), str(key), nbytes, theirs))
    sink.start()
    try:
        port = mine.recv()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(cert)
        block = os.urandom(TLS_WRITE)
        with ctx.wrap_socket(
            socket.create_connection(("127.0.0.1", port)), server_hostname="localhost"
        ) as s:
            cipher = s.cipher()[0]
            t0 = time.perf_counter()
            for _ in range(nbytes // TLS_WRITE):
                s.sendall(block)
            s.sendall(block[: nbytes % TLS_WRITE])
            if s.recv(1) != b"k":
                raise RuntimeError("the TLS sink did not ack")
            seconds = time.perf_counter() - t0
        got = mine.recv()
    finally:
        sink.join(30)
        if sink.is_alive():
            sink.kill()
    return {"bytes": got, "seconds": seconds, "mb_s": nbytes / seconds / 1e6, "cipher": cipher}


def aesgcm_throughput(nbytes: int) -> dict:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(AESGCM.generate_key(256))
    record = os.urandom(GCM_RECORD)
    count = max(1, nbytes // GCM_RECORD)
    t0 = time.perf_counter()
    for i in range(count):
        aead.encrypt(i.to_bytes(12, "big"), record, None)
    seconds = time.perf_counter() - t0
    done = count * GCM_RECORD
    return {"bytes": done, "seconds": seconds, "mb_s": done / seconds / 1e6}


# --- one file to many ----------------------------------------------------------------


def broadcast(tmp: Path, hub_key, source: Path, peers: int) -> dict:
    """FH sends ``source`` to one recipient, then to all ``peers`` in one call."""
    nbytes = source.stat().st_size
    key_files = [k for k, _ in small_keys(tmp / "file-fleetkeys", peers, "ff")]
    hub = node("FH", tmp, hub_key[0], FILE_SETTINGS)
    fl = None
    try:
        argv = ["--dir", tmp / "file-fleet", "--keys", *key_files]
        argv += ["--settings", __import__("json").dumps(FILE_SETTINGS)]
        argv += ["--hub-pem", hub_key[1], "--hub-port", hub.port, "--first-address", 201]
        fl = fleet("file-fleet", tmp, *argv)
        members = fl.line(120 + peers)["nodes"]
        for m in members:
            hub.request("add_peer", pem=m["pem"], address=f"{m['host']}:{m['port']}")
        hub.request("broadcast", timeout=20 + peers)  # sessions up with every one
        limit = timeout_for(nbytes * peers)
        reads0 = hub.request("stats")["node"]["file_chunk_reads"]
        sent = hub.request("send_file", path=str(source), peers=[members[0]["fp"]])
        one = hub.request("files_done", timeout=limit, count=1)["done"]
        reads1 = hub.request("stats")["node"]["file_chunk_reads"]
        sent_all = hub.request("send_file", path=str(source), peers=None)
        many = hub.request("files_done", timeout=limit, count=1 + peers)["done"][1:]
        reads2 = hub.request("stats")["node"]["file_chunk_reads"]
        states = {}
        for d in one + many:
            states[d["state"]] = states.get(d["state"], 0) + 1
        chunks = -(-nbytes // CHUNK)
        return {
            "mib": nbytes // MIB,
            "peers": len(members),
            "single_s": one[0]["t"] - sent["t0"],
            "broadcast_s": max(d["t"] for d in many) - sent_all["t0"],
            "states": states,
            "chunks": chunks,
            "single_reads": reads1 - reads0,
            "broadcast_reads": reads2 - reads1,
            "reads_per_chunk": (reads2 - reads1) / chunks,
        }
    finally:
        stop(hub)
        if fl is not None:
            fl.close()
