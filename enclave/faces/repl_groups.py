"""The REPL's group commands: ``/group create|add|remove|leave``, ``/groups``, ``/g``, and
the lines group events print.

Rules:
- Each command calls the Node's group API only; what is left on screen is the
  rendering of the node's events (``GroupChanged``: "alice added carol";
  ``GroupMessageReceived``; ``DeliveryChanged`` of a post's copies), so a change or a
  post made elsewhere (``enclave group``, the page) shows the same way.
- A post of ours shows once, then "delivered to N of M" as the members' copies are
  acked (a line per copy would scroll a big group away).
- Posts print as they arrive. One that arrives after a later one of the group was
  shown (a lower Lamport time: it was written earlier, and every member places it
  there) is marked "(earlier)": the REPL cannot move a line that scrolled away, and
  ``/ghistory`` prints the group in its one order.
"""

from __future__ import annotations

from enclave.errors import UserError
from enclave.node.display import (
    duration_text,
    message_ref,
    message_time,
    parse_duration,
    timer_line,
    visible,
)

HELP = """\
  /group create NAME PEER...  a group of you and these contacts  /group create team bob carol
  /group add GROUP PEER       add a contact (admins)             /group add team dave
  /group remove GROUP PEER    take a member out (admins)         /group remove team dave
  /group promote GROUP PEER   make a member an admin (admins)    /group promote team bob
  /group rename GROUP NEW     give the group another name        /group rename team crew
  /group disappear GROUP TIME posts vanish after TIME (admins)   /group disappear team 1d
  /group leave GROUP          leave (the last admin promotes one first) /group leave team
  /groups                     your groups, their members and roles
  /g GROUP MESSAGE            write to a group                   /g team Standup in 5
  /ghistory GROUP [N]         the last N posts, in the group's order
  /gfile GROUP PATH           offer a file to every other member /gfile team notes.pdf"""

SUBCOMMANDS = ("create", "add", "remove", "promote", "rename", "disappear", "leave")
HISTORY_DEFAULT = 20


def _words(rest: str, count: int, usage: str) -> list[str]:
    words = rest.split()
    if len(words) != count:
        raise UserError(f"usage: {usage}")
    return words


def _group_and_peer(commands, rest: str, usage: str) -> tuple[str, str]:
    """GROUP (one word) then a contact, whose name may hold spaces (quoted or not)."""
    group, _, after = rest.strip().partition(" ")
    peer, more = commands.take_peer(after)
    if not group or not peer or more.strip():
        raise UserError(f"usage: {usage}")
    return group, peer


def _peers(commands, text: str) -> list[str]:
    """Contacts one after another, each a word or a quoted name."""
    found = []
    rest = text.strip()
    while rest:
        peer, rest = commands.take_peer(rest)
        found.append(peer)
        rest = rest.strip()
    return found


async def cmd_group(commands, rest: str) -> None:
    sub, _, args = rest.strip().partition(" ")
    node = commands.node
    if sub == "create":
        name, _, members = args.strip().partition(" ")
        peers = _peers(commands, members)
        if not name or not peers:
            raise UserError(
                "usage: /group create NAME PEER... (the name is one word here; a contact "
                'with spaces in its name goes in quotes: "Ana María")'
            )
        info = await node.create_group(name, peers)
        commands.write(f"Created {_name(info.name)} with {len(info.members) - 1} member(s)")
    elif sub == "add":
        group, peer = _group_and_peer(commands, args, "/group add GROUP PEER")
        await node.group_add(group, peer)
    elif sub == "remove":
        group, peer = _group_and_peer(commands, args, "/group remove GROUP PEER")
        await node.group_remove(group, peer)
    elif sub == "promote":
        group, peer = _group_and_peer(commands, args, "/group promote GROUP PEER")
        await node.group_promote(group, peer)
    elif sub == "rename":
        group, new = _words(args, 2, "/group rename GROUP NEW (the new name is one word here)")
        await node.group_rename(group, new)
    elif sub == "disappear":
        group, when = _words(args, 2, "/group disappear GROUP TIME (30s, 5m, 1h, 1d, 1w, or off)")
        try:
            seconds = parse_duration(when)
        except ValueError as err:
            raise UserError(str(err)) from None
        await node.group_disappearing(group, seconds)  # the line: its GroupChanged
    elif sub == "leave":
        (group,) = _words(args, 1, "/group leave GROUP")
        await node.group_leave(group)
    else:
        raise UserError(
            "usage: /group create|add|remove|promote|rename|disappear|leave ... (see /help)"
        )


async def cmd_groups(commands, rest: str) -> None:
    if rest:
        raise UserError("usage: /groups")
    groups = commands.node.groups_list()
    if not groups:
        commands.write("No groups yet; make one with /group create NAME PEER...")
        return
    lines = []
    for g in groups:
        state = (
            "" if g.state == "member" else f" ({'you left' if g.state == 'left' else 'removed'})"
        )
        timer = f"  disappearing: {duration_text(g.disappear_s)}" if g.disappear_s else ""
        lines.append(f"{_name(g.name)}  {g.id[:8]}{state}{timer}")
        for m in g.members:
            role = "admin" if m.admin else "member"
            note = "" if m.contact else f" — in {_name(g.name)}, not a contact"
            lines.append(f"  {_name(m.name)}  {m.fingerprint[:16]}  {role}{note}")
    commands.write("\n".join(lines))


async def cmd_g(commands, rest: str) -> None:
    group, _, text = rest.partition(" ")
    if not group or not text.strip():
        raise UserError("usage: /g GROUP MESSAGE")
    await commands.node.group_send(group, text)


async def cmd_gfile(commands, rest: str) -> None:
    from enclave.faces.repl_files import path_argument

    group, _, path = rest.strip().partition(" ")
    path = path_argument(path)
    if not group or not path:
        raise UserError("usage: /gfile GROUP PATH")
    sent = await commands.node.group_send_file(group, path)
    names = ", ".join(commands.label(f.peer) for f in sent)
    commands.write(f"Offering {visible(sent[0].name, False)} to {len(sent)} member(s): {names}")


async def cmd_ghistory(commands, rest: str) -> None:
    words = rest.split()
    if not 1 <= len(words) <= 2 or (len(words) == 2 and not words[1].isdigit()):
        raise UserError("usage: /ghistory GROUP [N]")
    limit = int(words[1]) if len(words) == 2 else HISTORY_DEFAULT
    lines = commands.node.group_history(words[0], max(1, min(limit, 1000)))
    if not lines:
        commands.write("No posts yet")
        return
    out, clock = [], commands._groups.clock
    for line in lines:
        who = "you" if line.direction == "out" else commands.label(line.sender)
        text = visible(line.body or "", True)
        tick = _ticks(line.states) if line.direction == "out" else ""
        shown = message_time(line)
        when = clock(shown) if shown is not None else "unknown time"
        out.append(f"[{when}] {who}: {text}{tick}")
    commands.write("\n".join(out))


def _ticks(states: dict) -> str:
    done = sum(s == "delivered" for s in states.values())
    return f"  (delivered to {done} of {len(states)})"


def _name(text: str) -> str:
    return visible(text, False)


class GroupLines:
    """What group events print (see the rules)."""

    def __init__(self, commands, clock) -> None:
        self.commands = commands
        self.clock = clock  # ms since the epoch (None: now) -> the time a line shows
        self.posts: dict[bytes, list[int]] = {}  # our post's id -> [delivered, copies]
        self.latest: dict[str, tuple[int, str]] = {}  # group -> highest (lamport, sender) shown

    def received(self, e, clock: str) -> str:
        key = (e.lamport, e.sender)
        earlier = key < self.latest.get(e.group, (0, ""))
        self.latest[e.group] = max(key, self.latest.get(e.group, (0, "")))
        when = f"{clock}, unknown time" if e.created_ms is None else self.clock(e.created_ms)
        mark = " (earlier)" if earlier else ""
        who = self.commands.label(e.sender)
        return f"[{when}] {who} in {_name(e.group_name)}{mark}: {visible(e.body, True)}"

    def delivery(self, e, clock: str) -> str | None:
        post = self.posts.get(e.id)
        if e.state == "queued" and e.body is not None:
            if post is None:
                self.posts[e.id] = [0, 1]
                name = self._group_name(e.group)
                return f"[{clock}] you in {name}: {visible(e.body, True)}  ({message_ref(e.id)})"
            post[1] += 1
            return None
        if post is None or e.state != "delivered":
            return None
        post[0] += 1
        return f"  {message_ref(e.id)} delivered to {post[0]} of {post[1]}"

    def changed(self, e, clock: str) -> str:
        who = "you" if e.author == self.commands.node.fingerprint else self.commands.label(e.author)
        names = ", ".join(self._member(fp) for fp in e.subjects)
        group = _name(e.group_name)
        text = {
            "create": f"{who} created {group} with {names}",
            "add": f"{who} added {names} to {group}",
            "remove": f"{who} removed {names} from {group}",
            "leave": f"{who} left {group}",
            "promote": f"{who} made {names} admin of {group}",
            "rename": f"{who} renamed the group to {group}",
            "timer": f"{timer_line(who, e.seconds or 0)} in {group}",
        }.get(e.kind, f"{group}: {e.kind} by {who}")
        return f"[{clock}] {text}"

    def expired(self, e, clock: str) -> str:
        count = len(e.ids)
        refs = ", ".join(e.refs[:5]) + (", ..." if count > 5 else "")
        what, was = ("post", "was") if count == 1 else ("posts", "were")
        name = self._group_name(e.group)
        return f"[{clock}] {count} disappearing {what} in {name} expired and {was} erased ({refs})"

    def _member(self, fp: str) -> str:
        return "you" if fp == self.commands.node.fingerprint else self.commands.label(fp)

    def _group_name(self, gid: str) -> str:
        for g in self.commands.node.groups_list():
            if g.id == gid:
                return _name(g.name)
        return gid[:8]


HANDLERS = {
    "/group": cmd_group,
    "/groups": cmd_groups,
    "/g": cmd_g,
    "/ghistory": cmd_ghistory,
    "/gfile": cmd_gfile,
}
