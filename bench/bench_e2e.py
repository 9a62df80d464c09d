"""Smoke case for the end-to-end harness: ``bench/e2e.py --quick`` once, in a subprocess.

``pytest bench/ --benchmark-disable`` runs it so the harness cannot rot (about 20 s); it
checks that every figure was produced, never how fast. The full run, whose figures go
into PERFORMANCE.md, is ``python bench/e2e.py`` on its own.
"""

import json
import subprocess
import sys
from pathlib import Path

E2E = Path(__file__).with_name("e2e.py")


def test_e2e_quick(benchmark, tmp_path):
    out = tmp_path / "e2e.json"

    def run():
        subprocess.run(
            [sys.executable, str(E2E), "--quick", "--out", str(out)],
            check=True,
            timeout=300,
            capture_output=True,
        )
        return json.loads(out.read_text())

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    enclave = result["enclave"]
    assert enclave["throughput"]["n"] == 5000 and enclave["throughput"]["rate"] > 0
    assert enclave["latency"]["count"] == 1000
    assert enclave["handshakes"]["node_handshakes"] > 0  # established at the node, not only dialled
    for kind in ("raw", "raw-batch", "tls", "v1"):
        assert result["references"][kind]["throughput"]["rate"] > 0
        assert result["references"][kind]["latency"]["p50_us"] > 0
    normal = enclave["normal"]
    assert normal["throughput"]["rate"] > 0 and normal["latency"]["count"] == 1000
    assert enclave["idle"]["sessions"] >= enclave["idle"]["peers"] == 3
    assert enclave["idle"]["idle_cpu_share"] >= 0 and result["help"]["median_ms"] > 0
    assert enclave["sessions"]["sessions"] == enclave["sessions"]["requested"] == 200
    measured = [row for row in result["figures"] if row["enclave"] is not None]
    assert enclave["broadcast"]["hub_sessions"] == enclave["broadcast"]["peers"] == 10
    assert len(measured) == 13
