"""The lines printed under the table: what each case saw besides its figures.

``DETAILS`` is their order: each entry the dotted path of a case in the results ("" for
the whole results, where a line speaks of several cases) and the function that makes
its line (or lines) from it. They print what the JSON already holds, rounded for
reading: CPU shares per thread, the RSA rate, fsync, latency segments, the crowds' and
the floods' own counts.
"""

from __future__ import annotations

import json


def cpu_throughput(tp: dict) -> str:
    return f"CPU share during throughput (1.0 = one core): {json.dumps(tp['cpu_share'])}"


def cpu_handshakes(hs: dict) -> str:
    line = (
        f"CPU share during handshakes: B {json.dumps(hs['cpu_share_B'])},"
        f" initiator process {hs['initiator_cpu_share']}"
    )
    per = hs.get("cpu_per_handshake")
    if per is None:
        return line
    ours = sum(hs["cpu_share_B"].values()) + hs["initiator_cpu_share"]
    return (
        f"{line}\nCPU per handshake (ms): B {json.dumps(per['B'])}, initiator process"
        f" {per['initiator']:.3f}; total {per['total']:.3f}, of it 4 private ops of"
        f" {per['private_op']:.3f}: {per['private_share']:.0%} (the most the rate can be"
        f" of RSA-allowed when the two processes fill the cores); the machine's CPUs were"
        f" busy {hs['machine_busy']:.2f} cores meanwhile, B and the initiator {ours:.2f} of them"
    )


def rsa(r: dict) -> str:
    rsa, hs = r["rsa"], r["enclave"]["handshakes"]
    return (
        f"RSA-{rsa['bits']} private ops/s (mean of before/after the handshakes):"
        f" {rsa['ops_per_s_1_threads']:,.0f} on 1 thread, {rsa['ops_per_s_2_threads']:,.0f} on 2"
        f" (before {rsa['before']['ops_per_s_2_threads']:,.0f}, after"
        f" {rsa['after']['ops_per_s_2_threads']:,.0f}); handshake outcomes: {hs['outcomes']}"
    )


def fsync(fs: dict) -> str:
    return (
        f"fsync of 4 KiB in the stores' folder: p50 {fs['p50_us']:,.0f} us,"
        f" p99 {fs['p99_us']:,.0f} us"
    )


def segments(enclave: dict) -> str:
    lines = []
    for label, lat in (
        ('store_sync="full"', enclave["latency"]),
        ('store_sync="normal"', enclave["normal"]["latency"]),
    ):
        lines.append(f"latency segments, {label}, p50 / p99 (us):")
        for name, seg in lat["segments"].items():
            lines.append(f"   {name:<30} {seg['p50_us']:9,.0f} {seg['p99_us']:9,.0f}")
    return "\n".join(lines)


def cpu_normal(tpn: dict) -> str:
    return f'CPU share during throughput, store_sync="normal": {json.dumps(tpn["cpu_share"])}'


def idle_hub(idle: dict) -> str:
    return (
        f"idle hub: {idle['sessions']} sessions, {idle['idle_cpu_share']:.2%} of a core over"
        f" {idle['idle_seconds']:.1f} s, RSS {idle['hub_rss_kb']:,} KB; broadcasts (ms, first"
        f" is the warm-up): {[round(x, 2) for x in idle['broadcast_ms']]}"
    )


def broadcasts(enclave: dict) -> str:
    lines = []
    for label in ("broadcast", "broadcast_normal"):
        bc = enclave[label]
        lines.append(
            f"{label} to {bc['peers']} warm peers ({bc['hub_sessions']} sessions): rounds (ms)"
            f" {[round(x, 1) for x in bc['rounds_ms']]}, the warming one {bc['warm_ms']:.0f} ms"
        )
    return "\n".join(lines)


def flood(fl: dict) -> str:
    f = fl["flooder"]
    return (
        f"one contact flooding: H -> V @{fl['rate']:.0f} msg/s, p50 / p99 (us) quiet"
        f" {fl['quiet']['p50_us']:,.0f} / {fl['quiet']['p99_us']:,.0f}, flooding"
        f" {fl['flooding']['p50_us']:,.0f} / {fl['flooding']['p99_us']:,.0f}; F sent"
        f" {f['sent']:,} chats in {f['seconds']:.1f} s, {f['acked']:,} acked, told"
        f" {f['throttles']} (1 rate, 2 volume, 3 storage); V's CPU {json.dumps(fl['cpu_share_V'])}"
    )


def hs_flood(hf: dict) -> str:
    quiet, flooded = hf["quiet"], hf["flooded"]
    return (
        f"handshake flood: first message, connect to delivered, p50 / p99 (ms) quiet"
        f" {quiet['p50_us'] / 1000:,.1f} / {quiet['p99_us'] / 1000:,.1f},"
        f" flooded {flooded['p50_us'] / 1000:,.1f} / {flooded['p99_us'] / 1000:,.1f}"
        f" ({flooded['outcomes']}); two floods sent {hf['flood_sent']:,} junk HS1s"
        f" ({hf['flood_per_s']:,.0f}/s), refused meanwhile {hf['refused_meanwhile']}"
    )


def sessions(ss: dict) -> str:
    return (
        f"idle sessions: {ss['sessions']:,} of {ss['requested']:,} established in"
        f" {ss['seconds_to_establish']:.1f} s from {ss['initiator_keys']} keys; RSS"
        f" {ss['rss_before_kb']:,} -> {ss['rss_after_kb']:,} KB; outcomes {ss['outcomes']}"
    )


def presence(pr: dict) -> str:
    return (
        f"presence ({', '.join(f'{k} {v}' for k, v in pr['settings'].items())}),"
        f" {pr['rounds']} rounds (ms): online after it listens"
        f" {pr['online']['all_ms']}, after its process was launched"
        f" {pr['online_from_launch']['all_ms']}; offline after SIGTERM {pr['offline']['all_ms']}"
    )


def send(sd: dict) -> str:
    imports, first = sd["imports"], sd["first_run"]
    return (
        f"enclave send (ms): shown {sd['shown']['all_ms']}, wall {sd['wall']['all_ms']}"
        f" (unmeasured first run: shown {first['shown_ms']:.0f}, wall {first['wall_ms']:.0f});"
        f" a bare interpreter starts and exits in {sd['interpreter_ms']:.0f}, the command's"
        f" imports take {imports['all_ms']:.0f} (enclave's {imports['enclave_ms']:.0f})"
    )


def help_start(hp: dict) -> str:
    return f"enclave --help: median {hp['median_ms']:.0f} ms, min {hp['min_ms']:.0f} ms"


def groups(g: dict) -> str:
    rd, b = g["round"], g["burst"]
    return (
        f"group of {rd['members']}: post to every copy acked (ms) median / p99 / max"
        f" {rd['group']['median_ms']:.1f} / {rd['group']['p99_ms']:.1f} /"
        f" {rd['group']['max_ms']:.1f}, durable at the sender {rd['group_durable']['median_ms']:.1f}"
        f" (median), the warming post {rd['warm_ms']:.0f}; direct round median"
        f" {rd['direct']['median_ms']:.2f}. group of {b['members']}: {b['n']:,} posts in"
        f" {b['group_seconds']:.2f} s (durable {b['group_durable_seconds']:.2f} s),"
        f" {b['n']:,} direct in {b['direct_seconds']:.2f} s"
    )


HANDSHAKE_DETAILS = (("enclave.handshakes", cpu_handshakes), ("", rsa))  # --only handshakes

DETAILS = (
    ("enclave.throughput", cpu_throughput),
    ("enclave.handshakes", cpu_handshakes),
    ("", rsa),
    ("fsync", fsync),
    ("enclave", segments),
    ("enclave.normal.throughput", cpu_normal),
    ("enclave.idle", idle_hub),
    ("enclave", broadcasts),
    ("enclave.flood", flood),
    ("enclave.hs_flood", hs_flood),
    ("enclave.sessions", sessions),
    ("help", help_start),
    ("enclave.presence", presence),
    ("enclave.send", send),
    ("enclave.groups", groups),
)
