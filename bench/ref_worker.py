"""The references of bench/e2e.py, each side in its own process (uvloop).

    python bench/ref_worker.py ROLE [options]

Roles (every role prints JSON lines on stdout; servers first ``{"ev": "ready", "port"}``):

- ``stream-server`` / ``stream-client`` with ``--kind tls|raw|raw-batch``: the same chat
  messages Enclave sends (msgpack ``[1, id16, from32, to32, created, body100]``), each
  with a 4-byte length prefix, over one TCP connection on 127.0.0.1. ``tls``: Python ssl
  (TLS 1.3, self-signed certificate) carrying the plain frames. ``raw``: the ceiling, one
  AES-256-GCM seal per frame and nothing else. ``raw-batch``: what Enclave's record layer
  does, one msgpack array and one AES-256-GCM seal per write of 64 messages. The client
  writes 64 frames per write and keeps at most 32,768 unacknowledged; the server decodes
  every frame and acks the count after each read (one ack per batch). ``--mode throughput`` times N messages until the
  last ack; ``--mode latency`` sends one message per tick at ``--rate`` with its send time
  (``time.monotonic_ns``) in the created field, and the server reports one-way latency
  percentiles when the connection closes.
- ``v1-server`` / ``v1-client``: the seed's method, one sealed v1 envelope per message
  (``legacy.seal``: AES key, OAEP wrap, RSA-PSS signature) on its own TCP connection;
  the server parses, checks the time, verifies and opens each (``legacy.open_text``, one
  private operation) on a pool of 2 threads, like the sender's seals.
- ``dial``: handshakes per second against a node: ``--concurrency`` initiator
  Connections at a time, each closed as soon as it is established, for ``--seconds``;
  the initiator's private operations run on a pool of 2 threads.
- ``hold``: ``--n`` sessions to a node, each kept open once established (see ``hold``).
- ``flood``: one authenticated contact that ignores what it is told: once established it
  writes batches of ``--n`` chats of 100 B as fast as the socket takes them, never
  waiting for acks and ignoring THROTTLE, until stdin closes (see ``flood``).
- ``first-messages``: an honest contact's first message, ``--n`` times: a new session,
  one chat, the node's ack; connect-to-delivered percentiles.
- ``hs-flood``: a stranger's handshake flood: junk HS1s claiming a contact's fingerprint
  (right shape, fresh, bad signature) from ``--addresses`` source addresses, each on its
  own connection, ``--concurrency`` at a time, until stdin closes or ``--seconds`` pass.
- ``rsa``: RSA-4096 private operations (PSS sign) per second, on 1 and on 2 threads.

Keys arrive as unencrypted PEM files written by the harness into its temporary folder.
The roles live in bench/refs/, one module per kind; this file picks one and runs it.
"""

import argparse
import asyncio
import sys

from refs import rsa, sessions, strangers, streams, v1

ROLES = {
    "stream-server": streams.stream_server,
    "stream-client": streams.stream_client,
    "v1-server": v1.v1_server,
    "v1-client": v1.v1_client,
    "dial": sessions.dial,
    "hold": sessions.hold,
    "flood": sessions.flood,
    "first-messages": sessions.first_messages,
    "hs-flood": strangers.hs_flood,
}


def main(argv=None) -> int:
    args = parse(argv)
    if args.role == "rsa":  # threads of its own, no event loop
        rsa.rsa_rate(args)
        return 0
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(ROLES[args.role](args))
    return 0


def parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=[*ROLES, "rsa"])
    parser.add_argument("--kind", choices=["tls", "raw", "raw-batch"], default="raw")
    parser.add_argument("--mode", choices=["throughput", "latency"], default="throughput")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--dir", default=".")
    parser.add_argument("--key-file")
    parser.add_argument("--peer-pem")
    parser.add_argument("--claim-pem")
    parser.add_argument("--addresses", type=int, default=64)
    parser.add_argument("--keys-dir")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--first-address", type=int, default=2)
    parser.add_argument("--per-address", type=int, default=60)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
