"""Group chat between three real ``enclave listen --json`` processes, driven by the
``enclave group`` commands (issue 18's acceptance test).

Alice knows Bob and Carol; Bob and Carol are not each other's contacts and meet only
through the group. Alice removes Carol: Bob's next post never reaches her, and her
own node refuses to post. Then every member is restarted in turn while the others
write: nothing is lost and nothing is shown twice, and Alice and Bob end with the same
history in the same order.
"""

import json
from collections import Counter

import pytest
from support.stores import unlocked_store
from support.waiting import eventually_blocking
from test_cli_processes import PASSWORD, Person, enclave

FAST = ("--json", "--set", "reconnect_min=0.1", "--set", "reconnect_max=1.0")


def group_lines(streams) -> list[dict]:
    return [
        json.loads(line)
        for s in streams
        for line in s.seen
        if line.startswith("{") and '"group_message"' in line
    ]


def ok(*argv: str) -> str:
    done = enclave(*argv)
    assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return done.stdout


def listed(person: Person) -> str:
    return ok("--home", str(person.home), "group", "list")


def history(person: Person, gid: bytes) -> list[str]:
    with unlocked_store(person.home, PASSWORD) as store:  # the posts are sealed
        return [line.body for line in store.group_history(gid, person.fingerprint, 1000)]


@pytest.fixture
def trio(tmp_path, rsa_keys):
    people = {n: Person(tmp_path, n, rsa_keys[n]) for n in ("alice", "bob", "carol")}
    a, b, c = people.values()
    for other in (b, c):
        a.knows(other)
        other.knows(a)
    return a, b, c


def test_three_processes_remove_and_restart_each_member(trio):
    a, b, c = trio
    streams = {p.name: [p.listen(*FAST)] for p in trio}
    try:
        for p in trio:
            streams[p.name][-1].wait(lambda line: '"started"' in line, "listening")
        out = ok("--home", str(a.home), "group", "create", "trio", "bob", "carol")
        assert "trio" in out and "admin" in out
        for p in (b, c):  # within a few seconds on every member
            listing = eventually_blocking(lambda p=p: "trio" in listed(p) and listed(p), 10, "trio")
            assert "alice" in listing and "admin" in listing
        assert "not a contact" in listed(b)  # Carol, as Bob sees her

        ok("--home", str(b.home), "group", "send", "trio", "one from bob")
        streams["carol"][-1].event("Bob's post at Carol", type="group_message", text="one from bob")
        streams["alice"][-1].event("Bob's post at Alice", type="group_message", text="one from bob")

        ok("--home", str(a.home), "group", "remove", "trio", "carol")
        streams["carol"][-1].event("Carol hears she is out", type="group", change="remove")
        streams["bob"][-1].event("Bob hears it", type="group", change="remove")
        out = ok("--home", str(b.home), "group", "send", "trio", "two from bob")
        assert "all 1 members" in out  # Alice alone: Carol is not sent a copy
        streams["alice"][-1].event("Bob's second post", type="group_message", text="two from bob")
        refused = enclave("--home", str(c.home), "group", "send", "trio", "carol tries")
        assert refused.returncode == 2 and "no longer in trio" in refused.stderr

        sent = ["one from bob", "two from bob"]
        for down in trio:  # each member in turn stops while the others write
            streams[down.name][-1].stop()
            for writer in (a, b):
                if writer is not down:
                    text = f"{writer.name} while {down.name} is down"
                    ok("--home", str(writer.home), "group", "send", "trio", text)
                    sent.append(text)
            streams[down.name].append(down.listen(*FAST))
            streams[down.name][-1].wait(lambda line: '"started"' in line, "listening again")
            if down is not c:
                for text in sent[-1:]:
                    if not text.startswith(down.name):
                        streams[down.name][-1].event(text, type="group_message", text=text)
        last = sent[-1]
        for p in (a, b):
            if not last.startswith(p.name):
                streams[p.name][-1].event(last, type="group_message", text=last)
    finally:
        for runs in streams.values():
            runs[-1].stop()
    gid = bytes.fromhex(json.loads(next(
        line for line in streams["carol"][0].seen if '"group_message"' in line))["group"])  # fmt: skip
    ha, hb, hc = history(a, gid), history(b, gid), history(c, gid)
    assert ha == hb and sorted(ha) == sorted(sent)  # one order, nothing lost
    assert hc == ["one from bob"]  # nothing after her removal
    for p in trio:  # nothing shown twice, across restarts
        shown = Counter(e["text"] for e in group_lines(streams[p.name]))
        assert all(n == 1 for n in shown.values()), (p.name, shown)
    by_alice = sorted(t for t in sent if t.startswith("alice"))
    assert sorted(e["text"] for e in group_lines(streams["bob"])) == by_alice  # each once
