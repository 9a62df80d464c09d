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
   RSA-4096 private-operation rate (sign, thread pool of 2). ``--only handshakes`` runs
   this case alone (node B, the RSA rate before and after); with ``--profile cprofile``
   it adds one more handshake pass with cProfile in B's loop thread.
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
6. One contact flooding: node V with its default receive quotas and two contacts, H (a
   node) and F (bench/ref_worker.py ``flood``: an authenticated contact that writes
   batches of 1,024 chats as fast as the socket takes them and ignores THROTTLE). H's
   one-way latency to V at a paced 200 msg/s, first with F quiet, then while F floods;
   p50/p99 of both, V's CPU, and what F sent, got acked and was told.
7. A handshake flood from strangers: node W (defaults, but the per-peer handshake
   bucket) and its contact D at 127.0.0.1. D's first message on a new session, timed
   from the TCP connect to W's ack (bench/ref_worker.py ``first-messages``), N times in a
   row, first quiet, then while two processes (``hs-flood``) send junk HS1s claiming D,
   each from 64 addresses of its own; p50/p99 of both, and what W refused meanwhile.
8. Presence after start: nodes P and Q know each other at their addresses, with the
   settings a user gets (``presence`` on, ``reconnect_min``/``reconnect_max`` at their
   defaults); Q listens on the same port each time. N times (``--quick``: 2, else 5):
   Q is stopped (SIGTERM) until P publishes ``PeerOffline`` for it, then started again
   until P publishes ``PeerOnline``. Timed from the SIGTERM, and from Q listening (its
   ``ready`` line's ``time.monotonic()``; the same clock as P's); p50 and max of both.
9. ``enclave send`` into a running node: P serves its control socket (node_worker
   ``control``, as ``enclave.faces.runner`` does) and ``python -m enclave --home P send
   bob TEXT`` runs N times as a process (after one unmeasured run, which writes the
   bytecode caches). Timed from the launch to P publishing the message's first "queued"
   event with its text (what P's REPL and page show), and to the command's exit once it
   printed "Delivered"; p50 and max. Beside them: a bare interpreter's start and the
   command's imports (``-X importtime``, one more run).
10. Files (bench/endtoend/files.py): a 2 GiB random file (``--quick``: 256 MiB) from
   node FP to FQ, send_file to FQ's "delivered", beside TLS 1.3 on loopback and
   AES-256-GCM on one thread over the same bytes; the same file again with a chat every
   10 ms (p50/p99); both nodes' RSS growth during the first; a 256 MiB file (quick 64)
   to one peer, then to 10 in one call, and the sender's disk reads per chunk.
   ``--only files`` runs these alone (no microbenchmarks, no references).
11. Groups (bench/endtoend/groups.py): a sender node and 49 members (bench/fleet_worker.py,
   several to a process; ``--quick``: 4); the sender has each as a contact, they know
   only the sender. After one unmeasured post, 20 posts (quick 5), each from
   ``Node.group_send`` until every copy is acked, beside as many direct messages to one
   member, each until delivered (median, p99). Then a group of 10 (quick 5): 2,000 posts
   at once (quick 50) until every copy is delivered, beside 2,000 direct messages to one
   member the same way; posts/s, copies/s, and copies/s over direct msg/s.
   ``--only groups`` runs these alone.
12. Backup and restore (bench/endtoend/backups.py): a home whose store holds 100,000
   messages (quick: 5,000) backed up and restored in this process, past the password's
   scrypt runs (MB/s of the backup file), then ``enclave backup`` and ``enclave
   restore`` as processes (wall, scrypt included). ``--only backup`` runs these alone.

``--profile`` adds one more throughput pass (not the one reported) with cProfile in
both nodes' event-loop and store-writer threads, or py-spy sampling both processes, and
prints where the time went. Results go to ``--out`` as JSON and a table is printed.
Nothing here asserts a time.

The rooms: ``processes`` (the run's processes and keys), ``micro`` (the
microbenchmarks), ``scenarios`` (two nodes: throughput, latency, handshakes),
``crowds`` (one node and many peers), ``groups`` (group posts), ``backups``, ``floods`` (a node under abuse), ``everyday``
(presence, ``enclave send``), ``references``, ``profiling``, ``probes`` (the machine,
the disk, the code), ``run`` (the order of the run and the command line) and
``report`` (the table, one spec per row). Nodes run
tests/support/node_worker.py, shared with the tests; references bench/ref_worker.py;
the recipients of the broadcasts and the group members bench/fleet_worker.py.
"""

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
REPO = BENCH.parent

# The process harness (tests/support/procs.py) is the tests' own: import it as they do.
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))
