"""Smoke case for the end-to-end harness: ``bench/e2e.py --quick`` once, in a subprocess.

``pytest bench/ --benchmark-disable`` runs it so the harness cannot rot (about 50 s); it
checks that every figure was produced, the microbenchmark rows included, never how fast. The full run, whose figures go
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
    node_rows = [row for row in result["figures"] if "kind" not in row]
    # At least one session per peer: with presence both sides dial at start, and the two
    # sessions of a peer whose dials crossed may both stay (as in the idle case above).
    assert enclave["broadcast"]["hub_sessions"] >= enclave["broadcast"]["peers"] == 10
    hs = enclave["hs_flood"]
    assert hs["quiet"]["outcomes"] == hs["flooded"]["outcomes"] == {"ok": hs["rounds"]}
    assert hs["flood_sent"] > 0 and hs["refused_meanwhile"]  # the flood was refused, not served
    flood = enclave["flood"]
    assert flood["quiet"]["count"] == flood["flooding"]["count"] == 200
    assert flood["flooder"]["sent"] > flood["flooder"]["acked"] > 0  # held back, not dropped
    assert flood["flooder"]["throttles"].get("1", 0) >= 1  # and told why (rate)
    presence = enclave["presence"]
    for side in ("online", "offline", "online_from_launch"):
        assert presence[side]["count"] == presence["rounds"] == 2
    assert presence["offline"]["max_ms"] > 0 and presence["settings"]["presence"] is True
    send = enclave["send"]
    assert send["shown"]["count"] == send["wall"]["count"] == send["runs"] == 2
    assert 0 < send["shown"]["max_ms"] < send["wall"]["max_ms"]  # shown before it exits
    assert send["imports"]["enclave_ms"] > 0 and send["interpreter_ms"] > 0
    rotation = enclave["rotation"]
    assert rotation["rounds"] == 2 and 0 < rotation["handover_ms"] <= rotation["first_message_ms"]
    assert enclave["pairing"]["rounds"] == 3 and enclave["pairing"]["median_ms"] > 0
    backup = enclave["backup"]
    assert backup["messages"] == 5000 and not backup["full"] and backup["backup_mb"] > 0
    assert backup["backup_mb_s"] > 0 and backup["restore_cli_s"] > 0
    sealing = enclave["sealing"]
    for side in ("clear", "sealed"):
        assert sealing[side]["throughput"]["n"] == 2000 and sealing[side]["latency"]["count"] == 200
    assert sealing["throughput_ratio"] > 0 and sealing["old"]["messages"] == 5000
    assert sealing["old"]["seal_rate"] > 0 and sealing["old"]["search_all_ms"] > 0
    assert len(node_rows) == 77 and all(row["enclave"] is not None for row in node_rows)
    check_file_rows(result)
    check_group_rows(result)
    check_micro_rows(result)


def run_only(benchmark, tmp_path, case: str) -> dict:
    """``bench/e2e.py --quick --only CASE`` once, in a process of its own; its results."""
    out = tmp_path / f"{case}.json"

    def run():
        subprocess.run(
            [sys.executable, str(E2E), "--quick", "--only", case, "--out", str(out)],
            check=True,
            timeout=300,
            capture_output=True,
        )
        return json.loads(out.read_text())

    return benchmark.pedantic(run, rounds=1, iterations=1)


def test_e2e_only_nohistory(benchmark, tmp_path):
    """``--only nohistory --quick``: history off beside on, both rows, nothing kept of
    the history-off runs (only the "on" runs and the warm-up message are in B's history)."""
    result = run_only(benchmark, tmp_path, "nohistory")
    case = result["enclave"]["nohistory"]
    assert case["n"] == 2000 and case["on_rate"] > 0 and case["off_rate"] > 0
    assert case["kept"] == case["runs"] * case["n"] + 1
    rows = [row for row in result["figures"] if "history" in row["figure"]]
    assert len(rows) == 2 and all(row["enclave"] > 0 for row in rows)


def test_e2e_only_handshakes(benchmark, tmp_path):
    """``--only handshakes --quick``: the new-sessions row between its two RSA rate runs,
    and the CPU each handshake took on both sides."""
    result = run_only(benchmark, tmp_path, "handshakes")
    hs = result["enclave"]["handshakes"]
    assert hs["node_handshakes"] > 0 and result["rsa"]["ops_per_s_2_threads"] > 0
    per = hs["cpu_per_handshake"]
    assert per["initiator"] > 0 and per["private_op"] > 0 and 0 < per["private_share"] < 1
    assert hs["machine_busy"] > 0
    rows = result["figures"]
    assert [row["figure"] for row in rows] == ["new sessions per second (handshakes/s)"]
    assert rows[0]["refs"]["rsa_allowed"] > 0


def check_file_rows(result):
    """The file cases ran at their quick sizes and every one gave a figure (not judged)."""
    files = result["enclave"]["files"]
    assert files["file_mib"] == 256 and not files["full"]
    assert (
        files["transfer"]["mb_s"] > 0 and files["tls"]["mb_s"] > 0 and files["aesgcm"]["mb_s"] > 0
    )
    assert files["chats"]["chats"] > 0 and files["chats"]["p99_ms"] > 0
    assert files["transfer"]["rss"]["P"]["samples"] > 0
    b = files["broadcast"]
    assert b["peers"] == 10 and b["states"] == {"delivered": 11}
    assert b["single_s"] > 0 and b["broadcast_s"] > 0 and b["broadcast_reads"] > 0
    rows = [row for row in result["figures"] if row["figure"].startswith(("file ", "chat every"))]
    assert len(rows) == 4
    assert files["normal"]["mb_s"] > 0 and files["disk"]["mb_s"] > 0
    assert all(row["met"] is None for row in result["figures"] if "2 GiB" in row["target"])


def check_group_rows(result):
    """The group cases ran at their quick sizes, each beside its direct figure (not judged)."""
    groups = result["enclave"]["groups"]
    rd, burst = groups["round"], groups["burst"]
    assert rd["members"] == 5 and rd["copies"] == 4 and rd["group"]["count"] == rd["rounds"] == 5
    assert rd["group"]["median_ms"] > 0 and rd["direct"]["median_ms"] > 0
    assert burst["members"] == 5 and burst["n"] == 50
    assert round(burst["copies_per_s"] / burst["posts_per_s"], 6) == 4
    assert burst["posts_per_s"] > 0 and burst["direct_per_s"] > 0
    rows = [
        row
        for row in result["figures"]
        if row["figure"].startswith("group of ")
        and "expired" not in row["figure"]
        and "timer" not in row["figure"]
    ]  # the group cases' own rows (the disappearing posts' rows are judged elsewhere)
    assert len(rows) == 2 and all(row["met"] is None for row in rows)


def check_micro_rows(result):
    """The microbenchmark pass ran (quick) and its rows joined the table: every _fast
    pair with both twins timed, and per-frame seal/open and per-chat encode/decode."""
    micro = result["micro"]
    assert micro["mode"] == "quick" and micro["twins"] and micro["per_op"]
    twins = [row for row in result["figures"] if row.get("kind") == "twin"]
    assert len(twins) == len(micro["twins"])
    for row in twins:
        assert row["quick"] and row["met"] is None  # a quick pass is not judged
        assert row["native_ns"] > 0 and row["pure_ns"] > 0 and row["enclave"] > 0
    per_op = [row for row in result["figures"] if row.get("kind") == "per_op"]
    assert all(row["quick"] and row["enclave"] > 0 for row in per_op)
    cases = {(row["case"].split()[0], row["each"]) for row in per_op}
    for op, each in (("seal", "frame"), ("open", "frame")):
        assert (op, each) in cases
    for op in ("encode_batch", "decode_batch"):
        assert (op, "chat") in cases
    assert ("store:", "message") in cases  # the writers' commit cycles (bench_store.py)
    assert set(result["parts_seconds"]) == {"microbenchmarks", "node cases", "references"}
