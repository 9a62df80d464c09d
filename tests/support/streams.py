"""Numbered message streams: bodies ``PREFIX-000123....`` and what a store holds of them.

A stream is one sender's messages with one prefix, numbered from 0. The node worker
tallies the streams it is shown; tests and the fault lab check a store against them
(``history_report``): complete, in order, nothing twice. The benchmarks use the same
bodies, 100 characters, so every process in a run speaks of messages the same way.
"""

from __future__ import annotations

PAD = "."


def make_body(prefix: str, seq: int, size: int = 100) -> str:
    head = f"{prefix}-{seq:06d}"
    if PAD in prefix or len(head) > size:
        raise ValueError(f"prefix {prefix!r} does not fit a {size}-character body")
    return head.ljust(size, PAD)


def parse_body(body: str) -> tuple[str, int] | None:
    """(prefix, seq) of a body made by ``make_body``; None for any other text."""
    head = body.split(PAD, 1)[0]
    prefix, sep, digits = head.rpartition("-")
    if not sep or not digits.isdigit():
        return None
    return prefix, int(digits)


def history_report(store, peer_fp: str, prefix: str) -> dict:
    """What the store holds with one peer, oldest first, checked against the stream
    ``prefix``: incoming count, duplicate IDs and bodies, breaks of the +1 sequence
    (order errors), and outgoing rows by state plus the peer's outbox rows."""
    rows = store.history(peer_fp, limit=1 << 62)
    incoming = [m for m in rows if m.direction == "in"]
    outgoing = [m for m in rows if m.direction == "out"]
    ids, bodies = set(), {}
    dup_ids = dup_bodies = order_errors = other = 0
    seqs, twice = [], []
    for m in incoming:
        dup_ids += m.id in ids
        ids.add(m.id)
        parsed = parse_body(m.body or "")
        first = bodies.setdefault(m.body, m)
        if first is not m:
            dup_bodies += 1
            seq = parsed[1] if parsed else None
            twice.append({"seq": seq, "ids": [first.id.hex(), m.id.hex()]})
        if parsed is None or parsed[0] != prefix:
            other += 1
            continue
        if seqs and parsed[1] != seqs[-1] + 1:
            order_errors += 1
        seqs.append(parsed[1])
    states: dict[str, int] = {}
    for m in outgoing:
        states[m.state] = states.get(m.state, 0) + 1
    return {
        "count": len(incoming),
        "in_stream": len(seqs),
        "other": other,
        "duplicate_ids": dup_ids,
        "duplicate_bodies": dup_bodies,
        "twice": twice,  # each body stored again: its seq, and the ids of its first copy and this one
        "order_errors": order_errors,
        "first": seqs[0] if seqs else None,
        "last": seqs[-1] if seqs else None,
        "distinct_seqs": len(set(seqs)),
        "out": len(outgoing),
        "out_states": states,
        "outbox": len(store.outbox_for(peer_fp)),
    }
