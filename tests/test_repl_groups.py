"""The REPL's /group, /groups, /g and /ghistory, their completion and the lines group
events print, driven through prompt-toolkit over real nodes on loopback."""

import pytest
import test_repl
from prompt_toolkit.document import Document
from support.nodes import Recorder
from test_repl import repl

from enclave.faces.repl import PeerCompleter, redact
from enclave.faces.repl_commands import HELP
from enclave.node.events import GroupMessageReceived

pair = test_repl.pair  # the fixtures, used by name


def completions(node, text: str) -> list[str]:
    return [c.text for c in PeerCompleter(node).get_completions(Document(text), None)]


@pytest.mark.asyncio
async def test_create_post_ticks_history_and_a_reply(pair, tmp_path):
    a, b = pair
    rb = Recorder(b)
    async with repl(a, tmp_path) as r:
        await r.run("/group create team bob", "Created team with 1 member(s)")
        await r.screen.shows("you created team with bob")
        await rb.until(lambda rec: b.groups_list(), what="Bob holds team")
        out = await r.run("/g team standup in 5", "you in team: standup in 5")
        ref = out.split("(")[-1].rstrip(")")
        await r.screen.shows(f"{ref} delivered to 1 of 1")
        await rb.until(lambda rec: any(isinstance(e, GroupMessageReceived) for e in rec.events))
        await b.group_send("team", "on my way")
        await r.screen.shows("bob in team: on my way")
        await r.run("/ghistory team", "you: standup in 5  (delivered to 1 of 1)")
        assert "bob: on my way" in r.screen.text.split("/ghistory team")[-1]
        await r.run("/group rename team crew", "you renamed the group to crew")
        await r.screen.shows("you renamed the group to crew")
        await rb.until(lambda rec: b.groups_list()[0].name == "crew", what="Bob sees crew")
        await r.run("/groups", "crew  ")
        assert "bob" in r.screen.text.split("/groups")[-1] and "admin" in r.screen.text


@pytest.mark.asyncio
async def test_group_mistakes_are_one_line_errors(pair, tmp_path):
    a, _ = pair
    async with repl(a, tmp_path) as r:
        await r.run(
            "/group", "error: usage: /group create|add|remove|promote|rename|disappear|leave"
        )
        await r.run("/group create team", "error: usage: /group create NAME PEER...")
        await r.run("/group create team nobody", "error: no peer matches 'nobody'")
        await r.run("/g nowhere hello", "error: no group matches 'nowhere'")
        await r.run("/g", "error: usage: /g GROUP MESSAGE")
        await r.run("/group add team", "error: usage: /group add GROUP PEER")
        await r.run("/ghistory", "error: usage: /ghistory GROUP [N]")
        await r.run("/groups", "No groups yet")
        await r.run("/group create team bob", "Created team")
        await r.run("/group create team bob", "error: you already have a group named team")
        await r.run("/group add team bob", "error: team: already member")
        await r.run("/group leave team", "error: team: last admin (promote another admin")
        await r.run("/group remove team bob", "you removed bob from team")
        await r.run("/group leave team", "you left team")
        await r.run("/g team hello", "error: you are no longer in team (left)")


@pytest.mark.asyncio
async def test_completion_of_actions_groups_and_contacts(pair):
    a, _ = pair
    await a.create_group("team", ["bob"])
    assert completions(a, "/gr") == ["/group ", "/groups "]
    assert completions(a, "/group a") == ["add "]
    assert completions(a, "/group add t") == ["team "]
    assert "bob " in completions(a, "/group add team b")
    assert completions(a, "/g te") == ["team "]
    assert "bob " in completions(a, "/group create crew b")


def test_help_lists_the_group_commands_and_history_keeps_posts_out():
    for command in ("/group create", "/groups", "/g GROUP MESSAGE", "/ghistory"):
        assert command in HELP
    assert redact("/g team the secret plan") == "/g team "


@pytest.mark.asyncio
async def test_gfile_offers_a_file_to_every_member(pair, tmp_path):
    from enclave.node.events import FileChanged

    a, b = pair
    rb = Recorder(b)
    await a.create_group("team", ["bob"])
    src = tmp_path / "notes.bin"
    src.write_bytes(b"group notes " * 1000)
    async with repl(a, tmp_path) as r:
        await r.run(f"/gfile team {src}", "Offering notes.bin to 1 member(s): bob")
        await r.screen.shows("notes.bin to bob: delivered")
        await r.run("/gfile team", "error: usage: /gfile GROUP PATH")
    await rb.until(
        lambda rec: any(isinstance(e, FileChanged) and e.state == "delivered" for e in rec.events)
    )


@pytest.mark.asyncio
async def test_a_contact_with_spaces_in_its_name_joins_a_group(pair, tmp_path):
    a, _ = pair
    a.rename_contact("bob", "Bob Smith")
    async with repl(a, tmp_path) as r:
        await r.run('/group create crew "Bob Smith"', "Created crew with 1 member(s)")
        await r.run("/group remove crew Bob Smith", "you removed Bob Smith from crew")
        await r.run('/group add crew "Bob Smith', "error: a quoted name needs its closing quote")
