"""The references every Enclave figure is set against, each side in its own process.

Streams (bench/ref_worker.py ``stream-server``/``stream-client``): the raw ceiling (one
AES-256-GCM seal per frame), the same batched as Enclave's record layer does, and TLS
1.3. The seed's method (``v1-server``/``v1-client``): one sealed v1 envelope per
message, one TCP connection each. Throughput is N messages until the last ack; latency
is one message per tick at a rate, one-way, as the server saw it.
"""

from __future__ import annotations

from pathlib import Path

from endtoend.processes import ref

STREAMS = ("raw", "raw-batch", "tls")


def stream_reference(tmp: Path, kind: str, mode: str, n: int, rate: float = 0.0) -> dict:
    server = ref(f"{kind}-server", tmp, "stream-server", "--kind", kind)
    args = ["stream-client", "--kind", kind, "--mode", mode, "--n", n, "--rate", rate]
    done, conn = _exchange(tmp, server, f"{kind}-client", args, 120 + n / 1000, 30)
    if conn["received"] != n:
        raise RuntimeError(f"{kind} server got {conn['received']} of {n}")
    if mode == "throughput":
        return {"n": n, "seconds": done["seconds"], "rate": done["rate"]}
    return {"rate": rate, **conn["latency"]}


def v1_reference(tmp: Path, keys, mode: str, n: int, rate: float = 0.0) -> dict:
    args = ["v1-server", "--key-file", keys["bob"][0], "--peer-pem", keys["alice"][1]]
    server = ref("v1-server", tmp, *args, "--expect", n)
    args = ["v1-client", "--key-file", keys["alice"][0], "--peer-pem", keys["bob"][1]]
    args += ["--mode", mode, "--n", n, "--rate", rate, "--concurrency", 4]
    done, conn = _exchange(tmp, server, "v1-client", args, 120 + n / 10, 60)
    if conn["count"] != n:
        raise RuntimeError(f"v1 server opened {conn['count']} of {n} ({conn['errors']} errors)")
    if mode == "throughput":
        seconds = (conn["last"] - done["start_ns"]) / 1e9
        return {"n": n, "seconds": seconds, "rate": n / seconds}
    return {"rate": rate, **conn["latency"]}


def _exchange(tmp: Path, server, name: str, args: list, timeout: float, conn_timeout: float):
    """A client (``args`` and the server's port) against a started server: the client's
    report once it is done, then the server's report of the connection(s). Both
    processes are ended either way."""
    try:
        port = server.line(30)["port"]
        client = ref(name, tmp, *args, "--port", port)
        try:
            done = client.line(timeout)
        finally:
            client.close()
        conn = server.line(conn_timeout)
    finally:
        server.close()
    return done, conn
