"""``enclave invite`` and ``enclave join`` as real processes (issue 19, item 2): two
fresh homes become verified contacts without copying a key file and chat right after;
a wrong code fails on both sides and burns the code; a running node takes the
invitation over. Every wait reads stdout through ``Lines``; nothing sleeps.
"""

from test_cli_processes import Lines, _free_port, enclave, enclave_process

from enclave.protocol import pairing as P


class Home:
    def __init__(self, base, name: str) -> None:
        self.name, self.home, self.port = name, base / name, _free_port()
        done = enclave("--home", str(self.home), "generate")
        assert done.returncode == 0, done.stderr

    def cmd(self, *argv: str) -> list[str]:
        return ["--home", str(self.home), *argv]

    def network(self) -> list[str]:
        return [
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--set",
            f"display_name={self.name}",
        ]

    def invite(self) -> tuple[Lines, str]:
        lines = Lines(enclave_process(*self.cmd("invite", *self.network())))
        code = lines.wait(lambda s: s.startswith("Your code: "), "the code").split(": ", 1)[1]
        return lines, code

    def join(self, code: str, inviter: "Home"):
        where = f"127.0.0.1:{inviter.port}"
        return enclave(*self.cmd("join", code, "--peer-address", where, *self.network()))

    def peers(self) -> str:
        done = enclave(*self.cmd("peers"))
        assert done.returncode == 0, done.stderr
        return done.stdout


def ended(lines: Lines, said: str) -> int:
    """Wait for ``said`` on the command's stdout, then for it to exit by itself."""
    lines.wait(lambda s: said in s, said)
    lines.proc.wait(60)
    return lines.stop()[0]


def verified_row(person: Home, name: str, address: str) -> bool:
    """``enclave peers`` lists ``name`` at ``address``, verified."""
    rows = [line.split() for line in person.peers().splitlines()[1:]]
    return any(r[0] == name and address in r and "yes" in r for r in rows)


def wrong(code: str) -> str:
    n, w1, w2 = code.split("-")
    return f"{n}-{next(w for w in P.WORDS if w not in (w1, w2))}-{w2}"


def test_two_fresh_homes_pair_by_code_and_chat_at_once(tmp_path):
    alice, bob = Home(tmp_path, "alice"), Home(tmp_path, "bob")
    inviting, code = alice.invite()
    joined = bob.join(code, alice)
    assert joined.returncode == 0, joined.stderr
    assert "Paired with alice" in joined.stdout and "verified contact" in joined.stdout
    assert ended(inviting, "Paired with bob") == 0
    assert code not in inviting._err and code not in joined.stderr
    assert verified_row(alice, "bob", f"127.0.0.1:{bob.port}")
    assert verified_row(bob, "alice", f"127.0.0.1:{alice.port}")
    # Chat right after: Alice's node runs, Bob's node sends through its own.
    a = Lines(enclave_process(*alice.cmd("listen", "--json", *alice.network())))
    b = Lines(enclave_process(*bob.cmd("listen", "--json", *bob.network())))
    try:
        a.event("alice's node up", type="started")
        b.event("bob's node up", type="started")
        sent = enclave(*bob.cmd("send", "alice", "paired and talking"))
        assert sent.returncode == 0, sent.stderr
        got = a.event("bob's message", type="message", text="paired and talking")
        assert got["name"] == "bob"
        assert enclave(*alice.cmd("send", "bob", "welcome")).returncode == 0
        b.event("alice's answer", type="message", text="welcome")
    finally:
        a.stop()
        b.stop()


def test_a_wrong_code_fails_on_both_sides_and_burns_the_code(tmp_path):
    alice, bob = Home(tmp_path, "alice"), Home(tmp_path, "bob")
    inviting, code = alice.invite()
    joined = bob.join(wrong(code), alice)
    assert joined.returncode == 1 and "wrong code" in joined.stdout, joined.stdout + joined.stderr
    assert ended(inviting, "wrong code") == 1
    again = bob.join(code, alice)  # the right code, after the wrong guess: nobody waits
    assert again.returncode != 0
    assert "bob" not in alice.peers() and "alice" not in bob.peers()


def test_a_running_node_takes_the_invitation_and_a_typo_is_one_line(tmp_path):
    alice, bob = Home(tmp_path, "alice"), Home(tmp_path, "bob")
    node = Lines(enclave_process(*alice.cmd("listen", "--json", *alice.network())))
    try:
        node.event("alice's node up", type="started")
        inviting = Lines(enclave_process(*alice.cmd("invite")))
        code = inviting.wait(lambda s: s.startswith("Your code: "), "the code").split(": ")[1]
        joined = bob.join(code, alice)
        assert joined.returncode == 0, joined.stderr
        assert ended(inviting, "Paired with bob") == 0
        event = node.event("the contact added", type="contact", change="added")
        assert event["name"] == "bob"
    finally:
        node.stop()
    typo = enclave(*bob.cmd("join", "7-harbr-velvet", "--peer-address", "127.0.0.1:1"))
    assert typo.returncode == 2 and len(typo.stderr.strip().splitlines()) == 1
    assert "word list" in typo.stderr
