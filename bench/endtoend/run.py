"""The order of the run and its command line.

Three parts, each timed: the microbenchmarks, first and alone; the node cases, with
nodes A and B kept up from the first case to the last (and the profile pass, if asked
for); then the references, once no node runs. Sizes come from one table (``SIZES``),
full and quick side by side. Progress goes to stderr, one line per case (``say``); the table to
stdout; the results to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import namedtuple
from pathlib import Path

import endtoend
from endtoend import (
    BENCH,
    backups,
    crowds,
    disappear,
    everyday,
    files,
    floods,
    groups,
    nohistory,
    pairing,
    probes,
    processes,
    receipts,
    rotation,
    scenarios,
    sealing,
)
from endtoend.micro import MICRO_FILES, microbenchmarks
from endtoend.processes import introduce, make_keys, node, stop
from endtoend.profiling import PROFILERS, print_profile, profile_handshakes
from endtoend.references import STREAMS, stream_reference, v1_reference
from endtoend.report import figures, print_table

LATENCY_RATE = 1000.0  # msg/s of the paced latency runs


# What each case runs on, full size and quick (small sizes: every case runs and every
# row is there, for CI's smoke run).
SIZES = {
    "n": (100_000, 5_000),  # messages of a throughput run (and of each reference's)
    "lat_n": (5_000, 1_000),  # messages of a latency run
    "v1_n": (500, 100),  # messages of the seed's-method reference (one connection each)
    "hs_seconds": (6.0, 2.0),  # the handshake run
    "rsa_seconds": (2.0, 1.0),  # each RSA-rate run around it
    "idle_peers": (crowds.IDLE_PEERS, 3),
    "idle_seconds": (crowds.IDLE_SECONDS, 2.0),
    "broadcast_peers": (100, 10),
    "flood_n": (1_000, 200),  # the honest contact's messages, quiet and flooded
    "hs_rounds": (40, 10),  # the honest contact's first messages, quiet and flooded
    "sessions": (10_000, 200),  # idle sessions on one node
    "presence_rounds": (5, 2),  # a contact stopped, then started again
    "send_runs": (5, 2),  # enclave send into a running node (after one unmeasured run)
    "file_mib": (2048, 256),  # the file of the transfer cases (files.py)
    "file_broadcast_mib": (256, 64),  # the file sent to many
    "file_peers": (10, 10),  # its recipients
    "group_members": (50, 5),  # the group of the one-post round (sender included)
    "group_rounds": (20, 5),  # its measured posts, and the direct messages beside them
    "burst_members": (10, 5),  # the group of the throughput case
    "burst_posts": (2_000, 50),  # its posts at once, and the direct messages beside them
    "pair_rounds": (20, 3),  # pairings by code, each from join to both contacts added
    "rotate_rounds": (5, 2),  # key rotations on a running node, each handed over
    "backup_n": (100_000, 5_000),  # messages in the store backed up and restored
    "receipt_rounds": (20, 3),  # a reply, then a read receipt, each round
    "seal_n": (100_000, 2_000),  # messages of one throughput pass, sealed pair and clear pair
    "seal_lat_n": (2_000, 200),  # their latency messages at 1,000 msg/s
    "seal_rounds": (4, 2),  # rounds of fresh pairs, each with 2 passes of each kind
    "old_n": (1_000_000, 5_000),  # messages an older Enclave left in clear, then sealed
    "nohistory_n": (50_000, 2_000),  # messages of each history on / off run
    "disappear_n": (2000, 200),  # messages sent with a timer off, then on; then erased
}
Sizes = namedtuple("Sizes", SIZES)


def sizes(quick: bool) -> Sizes:
    return Sizes(**{name: pair[1 if quick else 0] for name, pair in SIZES.items()})


def say(text: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run(args) -> dict:
    size = sizes(args.quick)
    result: dict = {"command": " ".join(["python", "bench/e2e.py", *sys.argv[1:]])}
    result["machine"] = probes.machine()
    result["source"] = probes.source_state()
    result["sizes"] = {
        "throughput_n": size.n,
        "latency_n": size.lat_n,
        "latency_rate": int(LATENCY_RATE),
        "v1_n": size.v1_n,
    }
    t_start = time.monotonic()
    parts: dict = {}  # seconds per part of the run
    with tempfile.TemporaryDirectory(prefix="enclave-e2e-") as tmp_name:
        tmp = Path(tmp_name)
        if args.only is not None:
            t_only = time.monotonic()
            names = ["alice", "bob", "dialer" if args.only == "handshakes" else "hub"]
            keys = make_keys(tmp, names)
            if args.only == "files":
                result["enclave"] = {"files": file_part(tmp, keys, size)}
            elif args.only == "pairing":
                result["enclave"] = {"pairing": pairing_part(tmp, keys, size)}
            elif args.only == "rotation":
                result["enclave"] = {"rotation": rotation_part(tmp, keys, size)}
            elif args.only == "backup":
                result["enclave"] = {"backup": backup_part(tmp, keys, size)}
            elif args.only == "receipts":
                result["enclave"] = {"receipts": receipts_part(tmp, keys, size)}
            elif args.only == "sealing":
                result["enclave"] = {"sealing": sealing_part(tmp, keys, size)}
            elif args.only == "nohistory":
                result["enclave"] = {"nohistory": nohistory_part(tmp, keys, size)}
            elif args.only == "disappear":
                result["enclave"] = {"disappear": disappear_part(tmp, keys, size)}
            elif args.only == "handshakes":
                result["enclave"] = handshake_part(tmp, keys, size, args, result)
            else:
                key_files = crowds.fleet_keys(tmp, max(size.group_members, size.burst_members))
                result["enclave"] = {"groups": group_part(tmp, keys, key_files, size)}
            parts[f"{args.only} cases"] = round(time.monotonic() - t_only, 1)
            result["parts_seconds"] = parts
            result["seconds"] = round(time.monotonic() - t_start, 1)
            result["figures"] = figures(result)
            return result
        mode = "quick" if args.quick else "full"
        say(f"microbenchmarks ({mode}): pytest-benchmark on {', '.join(MICRO_FILES)}")
        result["micro"] = microbenchmarks(tmp, args.quick)
        parts["microbenchmarks"] = result["micro"]["seconds"]
        say(f"microbenchmarks done in {parts['microbenchmarks']:.0f} s")
        t_nodes = time.monotonic()
        keys = node_part(tmp, args, size, result)
        parts["node cases"] = round(time.monotonic() - t_nodes, 1)
        say(f"node cases done in {parts['node cases']:.0f} s")
        t_refs = time.monotonic()
        result["references"] = reference_part(tmp, keys, size)
        parts["references"] = round(time.monotonic() - t_refs, 1)
        say(f"references done in {parts['references']:.0f} s")
    result["parts_seconds"] = parts
    result["seconds"] = round(time.monotonic() - t_start, 1)
    result["figures"] = figures(result)
    return result


def node_part(tmp: Path, args, size: Sizes, result: dict) -> dict:
    """Every node case, into ``result``; the keys, for the references."""
    result["fsync"] = probes.fsync_probe(tmp)
    say(f"keys: {3 + 1 + size.idle_peers} x RSA-4096")
    peer_names = [f"p{i}" for i in range(size.idle_peers)]
    keys = make_keys(tmp, ["alice", "bob", "dialer", "hub", *peer_names])
    say("enclave --help, 7 runs")
    result["help"] = probes.help_wall()
    say("nodes A, B")
    a = node("A", tmp, keys["alice"][0])
    b = node("B", tmp, keys["bob"][0], scenarios.B_SETTINGS)
    try:
        introduce(a, keys["alice"][1], b, keys["bob"][1])
        b.request("add_peer", pem=keys["dialer"][1].read_text(), address=None)
        enclave = pair_cases(tmp, a, b, keys, size, args, result)
        enclave.update(other_cases(tmp, keys, size))
        if args.profile:
            say(f"profile ({args.profile}), {size.n:,} messages")
            profile = PROFILERS[args.profile](a, b, size.n, tmp)
            result["profile"] = {"tool": args.profile, **profile}
    finally:
        stop(a, b)
    result["enclave"] = enclave
    return keys


def pair_cases(tmp: Path, a, b, keys, size: Sizes, args, result: dict) -> dict:
    """A to B: the first message, throughput, latency; handshakes to B between two RSA
    rate runs (the machine is shared: its rate drifts; the target uses their mean)."""
    enclave: dict = {"first_message_s": scenarios.warm_up(a, b, size.n)}
    say(f"enclave throughput, {size.n:,} messages")
    enclave["throughput"] = scenarios.enclave_throughput(a, b, size.n)
    say(f"enclave latency, {size.lat_n:,} messages at 1,000 msg/s")
    enclave["latency"] = scenarios.enclave_latency(a, b, LATENCY_RATE, size.lat_n)
    enclave["handshakes"] = handshake_case(tmp, b, keys, size, args, result)
    return enclave


def handshake_case(tmp: Path, b, keys, size: Sizes, args, result: dict) -> dict:
    """Handshakes to B between two RSA rate runs (the machine is shared: its rate
    drifts; the target uses their mean), into ``result["rsa"]``; the handshakes' figures."""
    say("RSA-4096 private-op rate, then handshakes, then the rate again")
    rsa_before = scenarios.rsa_rate(tmp, keys["alice"][0], size.rsa_seconds)
    say(f"enclave handshakes, {size.hs_seconds:.0f} s")
    hs = scenarios.handshakes(tmp, b, keys, size.hs_seconds, args.hs_concurrency)
    rsa_after = scenarios.rsa_rate(tmp, keys["alice"][0], size.rsa_seconds)
    result["rsa"] = scenarios.rsa_summary(rsa_before, rsa_after)
    return hs


def handshake_part(tmp: Path, keys, size: Sizes, args, result: dict) -> dict:
    """``--only handshakes``: node B alone, the handshake case between its RSA rate
    runs; with ``--profile cprofile``, one more handshake pass with B's loop profiled."""
    b = node("B", tmp, keys["bob"][0], scenarios.B_SETTINGS)
    try:
        b.request("add_peer", pem=keys["dialer"][1].read_text(), address=None)
        enclave = {"handshakes": handshake_case(tmp, b, keys, size, args, result)}
        if args.profile == "cprofile":
            say(f"profile (cprofile), handshakes, {size.hs_seconds:.0f} s")
            result["profile"] = profile_handshakes(tmp, b, keys, size, args)
    finally:
        stop(b)
    return enclave


def other_cases(tmp: Path, keys, size: Sizes) -> dict:
    """The cases with nodes of their own (A and B stay up meanwhile, idle)."""
    out: dict = {}
    say('store_sync = "normal": nodes An, Bn; throughput, then latency')
    out["normal"] = scenarios.sync_normal(tmp, keys, size.n, size.lat_n)
    peers, seconds = size.idle_peers, size.idle_seconds
    say(f"idle hub with {peers} peers, {seconds:.0f} s; broadcast to them")
    out["idle"] = crowds.idle_and_broadcast(tmp, keys, keys["hub"], seconds, peers)
    say(f"broadcast to {size.broadcast_peers} warm peers, store_sync full, then normal")
    key_files = crowds.fleet_keys(tmp, size.broadcast_peers)
    out["broadcast"] = crowds.broadcast_warm(tmp, keys["hub"], key_files)
    out["broadcast_normal"] = crowds.broadcast_warm(tmp, keys["hub"], key_files, sync="normal")
    out["groups"] = group_part(tmp, keys, key_files, size)
    say(f"one contact flooding: another's latency, {size.flood_n} messages at 200 msg/s")
    out["flood"] = floods.one_contact_flooding(tmp, keys, size.flood_n)
    rounds = size.hs_rounds
    say(f"handshake flood: {rounds} first messages, quiet, then beside two floods")
    out["hs_flood"] = floods.handshake_flood(tmp, keys, rounds, 60.0)
    say(f"{size.sessions:,} idle sessions on one node")
    out["sessions"] = crowds.idle_sessions(tmp, keys["hub"], size.sessions)
    rounds, runs = size.presence_rounds, size.send_runs
    say(f"presence: a contact stopped and started {rounds} times; enclave send, {runs} runs")
    out.update(everyday.presence_and_send(tmp, keys, rounds, runs))
    out["files"] = file_part(tmp, keys, size)
    out["pairing"] = pairing_part(tmp, keys, size)
    out["rotation"] = rotation_part(tmp, keys, size)
    out["backup"] = backup_part(tmp, keys, size)
    out["receipts"] = receipts_part(tmp, keys, size)
    out["nohistory"] = nohistory_part(tmp, keys, size)
    out["disappear"] = disappear_part(tmp, keys, size)
    out["sealing"] = sealing_part(tmp, keys, size)
    return out


def private_keys(*files: Path) -> list:
    """The private keys in these PEM files (the in-process cases' nodes take keys)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return [load_pem_private_key(f.read_bytes(), None) for f in files]


def sealing_part(tmp: Path, keys, size: Sizes) -> dict:
    say(
        f"history sealed vs in clear: {size.seal_rounds} rounds of a fresh pair of each kind,"
        f" 2 passes of {size.seal_n:,} messages each; sealing {size.old_n:,}"
    )
    clear = make_keys(tmp, ["clear-a", "clear-b"])  # a pair of its own beside alice's
    sides = ((clear["clear-a"], clear["clear-b"]), (keys["alice"], keys["bob"]))
    return sealing.sealing_case(
        tmp, sides, size.seal_n, size.seal_lat_n, size.old_n, size.seal_rounds
    )


def nohistory_part(tmp: Path, keys, size: Sizes) -> dict:
    say(f"history off beside on: {size.nohistory_n:,} messages at once, each way of it")
    a, b = private_keys(keys["alice"][0], keys["bob"][0])
    return nohistory.nohistory_case(tmp, a, b, size.nohistory_n)


def disappear_part(tmp: Path, keys, size: Sizes) -> dict:
    say(f"disappearing messages: {size.disappear_n:,} sent with a timer off, then on; erased")
    a, b = private_keys(keys["alice"][0], keys["bob"][0])
    out = disappear.disappear_case(tmp, a, b, size.disappear_n)
    say(f"  and in a group of 5: {size.disappear_n:,} posts with a timer off, then on; erased")
    made = processes.small_keys(tmp / "disappear-keys", 2, "d")  # a folder of its own
    hub, *small = private_keys(keys["hub"][0], *(f for f, _ in made))
    out["group"] = disappear.group_disappear_case(tmp, [a, b, hub, *small], size.disappear_n)
    return out


def receipts_part(tmp: Path, keys, size: Sizes) -> dict:
    say(f"replies and read receipts: {size.receipt_rounds} rounds of each")
    a, b = private_keys(keys["alice"][0], keys["bob"][0])
    return receipts.receipts_case(tmp, a, b, size.receipt_rounds)


def backup_part(tmp: Path, keys, size: Sizes) -> dict:
    say(f"backup and restore of a home with {size.backup_n:,} messages, in process and as commands")
    return backups.backup_case(tmp, keys["alice"][0], keys["bob"][1], size.backup_n)


def rotation_part(tmp: Path, keys, size: Sizes) -> dict:
    rounds = size.rotate_rounds
    say(f"key rotation: {rounds} rotations of a running node, each until its contact switched")
    a, b = private_keys(keys["alice"][0], keys["bob"][0])
    fresh = make_keys(tmp, [f"rot{i}" for i in range(rounds)])
    new = private_keys(*(fresh[f"rot{i}"][0] for i in range(rounds)))
    return rotation.rotation_case(tmp, a, b, new)


def pairing_part(tmp: Path, keys, size: Sizes) -> dict:
    say(f"pairing by code: {size.pair_rounds} rounds, join until both contacts are added")
    a, b = private_keys(keys["alice"][0], keys["bob"][0])
    return pairing.pairing_case(tmp, a, b, size.pair_rounds)


def file_part(tmp: Path, keys, size: Sizes) -> dict:
    mib, peers = size.file_mib, size.file_peers
    say(
        f"files: {mib:,} MiB P to Q (then TLS 1.3, AES-GCM), again with chats;"
        f" {size.file_broadcast_mib} MiB to 1, then {peers} peers"
    )
    return files.file_cases(tmp, keys, mib, size.file_broadcast_mib, peers)


def group_part(tmp: Path, keys, key_files: list[Path], size: Sizes) -> dict:
    big, rounds = size.group_members, size.group_rounds
    small, posts = size.burst_members, size.burst_posts
    say(
        f"groups: {big} members, {rounds} posts each until all acked, then {rounds} direct;"
        f" {small} members, {posts:,} posts at once, then {posts:,} direct"
    )
    return groups.group_cases(tmp, keys["hub"], key_files, big, rounds, small, posts)


def reference_part(tmp: Path, keys, size: Sizes) -> dict:
    refs: dict = {}
    for kind in STREAMS:
        say(f"reference {kind}: throughput, then latency")
        refs[kind] = {
            "throughput": stream_reference(tmp, kind, "throughput", size.n),
            "latency": stream_reference(tmp, kind, "latency", size.lat_n, LATENCY_RATE),
        }
    say(f"reference v1 (seed's method): {size.v1_n} messages, then latency at 50 msg/s")
    refs["v1"] = {
        "throughput": v1_reference(tmp, keys, "throughput", size.v1_n),
        "latency": v1_reference(tmp, keys, "latency", size.v1_n // 5, 50.0),
    }
    return refs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=endtoend.__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes (CI)")
    parser.add_argument("--out", default=str(BENCH / "results" / "e2e.json"))
    parser.add_argument("--profile", choices=list(PROFILERS))
    parser.add_argument(
        "--hs-concurrency",
        type=int,
        default=8,
        help="handshakes in flight at once (node B admits crypto_queue = 8 by default)",
    )
    parser.add_argument(
        "--only",
        choices=[
            "sealing",
            "files",
            "groups",
            "pairing",
            "rotation",
            "backup",
            "receipts",
            "nohistory",
            "disappear",
            "handshakes",
        ],  # fmt: skip
        help="only these node cases (no microbenchmarks, no references): their rows",
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
