"""Several Enclave nodes in one process for bench/e2e.py (the broadcast and group cases).

    python bench/fleet_worker.py --dir DIR --keys K1.pem K2.pem ... --hub-pem HUB.pub.pem
        --hub-port PORT [--settings JSON]

Each key gets its own node (home DIR/<key file stem>) listening on its own loopback address
127.0.1.N (N = ``--first-address`` + its place; the hub's per-address caps count each
recipient separately, as they would on a network) (uvloop), with
the hub added as its peer. stdout: one JSON line ``{"ev": "ready", "nodes": [{"fp",
"host", "port", "pem"}, ...]}``; the nodes then receive, store and ack until stdin closes. They
subscribe to nothing: they are the hub's recipients (or the members of its groups, which
they join when it adds them), not measured themselves.
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from enclave.faces.runner import run_on_uvloop
from enclave.node import Node
from enclave.node import settings as settings_mod


async def amain(args) -> int:
    hub_pem = Path(args.hub_pem).read_text()
    nodes, ready = [], []
    for k, key_file in enumerate(args.keys):
        host = f"127.0.1.{args.first_address + k}"
        key = serialization.load_pem_private_key(Path(key_file).read_bytes(), None)
        home = Path(args.dir) / Path(key_file).stem
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings = settings_mod.load(home, json.loads(args.settings))
        node = Node(home, key, settings)
        _, port = await node.start(host, 0)
        node.add_peer(hub_pem, f"127.0.0.1:{args.hub_port}", "hub")
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        nodes.append(node)
        ready.append({"fp": node.fingerprint, "host": host, "port": port, "pem": pem.decode()})
    sys.stdout.write(json.dumps({"ev": "ready", "nodes": ready}) + "\n")
    sys.stdout.flush()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for node in nodes:
        await node.stop()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--keys", nargs="+", required=True)
    parser.add_argument("--hub-pem", required=True)
    parser.add_argument("--hub-port", type=int, required=True)
    parser.add_argument("--first-address", type=int, default=1)
    parser.add_argument("--settings", default="{}", help="Settings overrides as JSON")
    args = parser.parse_args(argv)
    return run_on_uvloop(amain(args))  # as a node's own process starts


if __name__ == "__main__":
    sys.exit(main())
