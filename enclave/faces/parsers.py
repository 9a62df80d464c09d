"""What ``enclave`` accepts: the subcommand table, a parser per subcommand, the seed's flags.

Rules:
- ``SUBCOMMANDS`` is the one list of what ``enclave`` does: name -> ``Sub(module,
  function, build, summary, example)``. ``cli`` imports ``module`` only when that
  subcommand runs and calls ``function(args)``; a module missing from this build is a
  one-line "not available in this build yet". Adding a subcommand is one line here.
- ``build(parser)`` adds the subcommand's own arguments. Every subcommand also takes the
  global options (``--home``, ``--password-file``, ``--set``), before or after it.
- A subcommand fills the same ``dest`` names as its seed flag (``add FILE`` fills
  ``add_peer`` as ``--add-peer FILE`` does; ``SEED_FLAGS`` pairs them), so both forms
  run the same code with the same arguments.
- Each subcommand's ``--help`` shows its one-line summary and an example.
- Standard library only (``enclave --help`` and ``--version`` stay light); the
  completion script's ``shtab`` is imported only by ``enclave completion``.
"""

from __future__ import annotations

import argparse
from typing import NamedTuple

from enclave import __version__
from enclave.errors import UserError

DEFAULT_PORT = 8000
DEFAULT_WEB_PORT = 5000
DEFAULT_WEB_HOST = "127.0.0.1"
DEFAULT_LISTEN_HOST = "0.0.0.0"
# shtab's file completion, spelled out so this module needs no shtab to load
FILE_COMPLETION = {
    "bash": "_shtab_compgen_files",
    "zsh": "_files",
    "tcsh": "f",
    "fish": "(__fish_complete_path (commandline -ct))",
}
SHELLS = ("bash", "zsh", "fish")


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one-line ``UserError``s like every other mistake."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see {self.prog} --help)")


class Sub(NamedTuple):
    module: str
    function: str
    build: object  # build(parser): adds the subcommand's own arguments
    summary: str
    example: str


# --- the subcommands' own arguments ---------------------------------------------------


def _nothing(p) -> None:
    pass


def _force(p, text: str) -> None:
    p.add_argument("--force", action="store_true", help=text)


def _new_password_file(p) -> None:
    p.add_argument(
        "--new-password-file",
        metavar="FILE",
        help="read the new password from the first line of FILE (mode 600; or set "
        "ENCLAVE_NEW_PASSWORD; else asked twice)",
    ).complete = FILE_COMPLETION


def _change_password(p) -> None:
    _new_password_file(p)


def _generate(p) -> None:
    _force(p, "replace an existing identity (peers who know the old one lose you)")


def _rotate_key(p) -> None:
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def _revoke(p) -> None:
    p.add_argument(
        "--certificate",
        metavar="FILE",
        help="the revocation certificate (default: revocation.cert in the home)",
    )
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def _history(p) -> None:
    _peer(p)
    p.add_argument(
        "--limit", type=int, default=50, metavar="N", help="the last N messages (default 50)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")


def _backup(p) -> None:
    p.add_argument(
        "file", metavar="FILE", help="the backup file to write (an older backup there is replaced)"
    ).complete = FILE_COMPLETION
    p.add_argument(
        "--new-password",
        action="store_true",
        help="seal the backup under a password of its own, asked twice (default: your "
        "identity's password)",
    )
    p.add_argument(
        "--new-password-file",
        metavar="FILE",
        help="read the backup's own password from the first line of FILE (mode 600; or set "
        "ENCLAVE_NEW_PASSWORD)",
    ).complete = FILE_COMPLETION


def _restore(p) -> None:
    p.add_argument(
        "file",
        metavar="FILE",
        help="a file made by enclave backup; the password asked (or ENCLAVE_PASSWORD) is "
        "the one it was sealed under, and the identity restored keeps its own password",
    ).complete = FILE_COMPLETION
    _force(p, "replace the identity in the home (the old home is moved aside, not erased)")


def _wipe(p) -> None:
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def _web_sessions(p) -> None:
    which = p.add_mutually_exclusive_group()
    which.add_argument("--revoke", metavar="ID", help="sign one browser out (its id as listed)")
    which.add_argument("--revoke-all", action="store_true", help="sign every browser out")


def _import_key(p) -> None:
    p.add_argument(
        "import_key", metavar="FILE", help="the original client's private key PEM"
    ).complete = FILE_COMPLETION
    _force(p, "replace an existing identity")
    _new_password_file(p)


def _add(p) -> None:
    p.add_argument(
        "add_peer", metavar="PEM", help="the peer's public key file"
    ).complete = FILE_COMPLETION
    p.add_argument(
        "--address", "--peer-address", dest="peer_address", metavar="HOST:PORT", required=True,
        help="where the peer listens",
    )  # fmt: skip
    p.add_argument("--name", help="a short name for the peer")
    p.add_argument(
        "--protocol",
        choices=("auto", "v1"),
        help="v1 for a peer running only the original client (legacy, not "
        "forward-secret); default auto",
    )
    _force(p, "with --protocol v1: mark legacy a peer that has spoken Enclave's protocol (v2)")


def _network(p) -> None:
    add = p.add_argument
    add("--port", metavar="PORT", help=f"port to listen on for peers (default {DEFAULT_PORT})")
    add(
        "--host",
        metavar="HOST",
        help=f"address to listen on for peers (default {DEFAULT_LISTEN_HOST}: every "
        "interface; 127.0.0.1 or a LAN address restricts it)",
    )
    add("--verbose", action="store_true", help="also print the full settings in effect")
    add("--downloads", metavar="DIR", help="where received files go (default <home>/downloads)")
    add(
        "--no-discovery",
        action="store_true",
        help="do not announce this node on the LAN nor look for others (setting: discovery)",
    )


def _listen(p) -> None:
    _network(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="no prompt: one JSON object per line on stdout for each event (README, Scripts)",
    )
    p.set_defaults(listen=True)


def _web(p) -> None:
    _network(p)
    _web_options(p)
    p.set_defaults(web=True)


def _web_options(p) -> None:
    add = p.add_argument
    add("--web-port", metavar="PORT", help=f"port of the web page (default {DEFAULT_WEB_PORT})")
    add(
        "--web-host",
        metavar="HOST",
        help=f"address of the web page (default {DEFAULT_WEB_HOST}); any address but a "
        "loopback one lets other machines reach it and needs --web-cert and --web-key",
    )
    add("--web-cert", metavar="FILE", help="serve the page over HTTPS with this certificate")
    add("--web-key", metavar="FILE", help="the private key (PEM) of --web-cert")


def _send(p) -> None:
    p.add_argument("peer", metavar="PEER", help="peer name or fingerprint prefix (8+ hex digits)")
    p.add_argument("message", metavar="MESSAGE", nargs="+", help="the text to send")


def _message_ref(p) -> None:
    p.add_argument(
        "ref",
        metavar="REF",
        help="the message's #ref as enclave history shows it, with or without the # (k3f9, "
        "or '#k3f9' quoted: a shell takes # for a comment), or its full id (32 hex digits, "
        "enclave history --json)",
    )


def _direction(p) -> None:
    p.add_argument(
        "--direction",
        choices=("in", "out"),
        help="with a full id: whose message it is (in: theirs, out: yours); needed only when "
        "both sides used that id",
    )


def _reply(p) -> None:
    _peer(p)
    _message_ref(p)
    p.add_argument("message", metavar="MESSAGE", nargs="+", help="the text to send")
    _direction(p)


def _delete(p) -> None:
    _peer(p)
    _message_ref(p)
    _direction(p)


def _send_file(p) -> None:
    p.add_argument("peer", metavar="PEER", help="peer name or fingerprint prefix (8+ hex digits)")
    p.add_argument("paths", metavar="PATH", nargs="+", help="the files to send")
    p.add_argument(
        "--wait", action="store_true", help="stay until every file is delivered, with progress"
    )


def _invite(p) -> None:
    _network(p)


def _join(p) -> None:
    p.add_argument(
        "code", metavar="CODE", help="the code the inviter read to you, like 7-harbor-velvet"
    )
    p.add_argument(
        "--peer-address",
        metavar="HOST:PORT",
        help="where the inviter's node listens (default: find it on this network by the code's number)",
    )
    _network(p)


def _completion(p) -> None:
    p.add_argument("shell", metavar="SHELL", choices=SHELLS, help=" or ".join(SHELLS))


def _peer(p) -> None:
    p.add_argument("peer", metavar="PEER", help="peer name or fingerprint prefix (8+ hex digits)")


def _receipts(p) -> None:
    _peer(p)
    p.add_argument("choice", choices=("on", "off"), help="on: allow them with this peer")


def _keep_history(p) -> None:
    _peer(p)
    p.add_argument(
        "choice", choices=("on", "off"), help="off: its messages are shown, then kept nowhere"
    )


def _disappear(p) -> None:
    _peer(p)
    p.add_argument("time", metavar="TIME", help="30s, 5m, 1h, 1d, 1w (up to 4w), or off")


def _remove(p) -> None:
    _peer(p)
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def _rename(p) -> None:
    _peer(p)
    p.add_argument("new_name", metavar="NEW", help="the new name")


def _group(p) -> None:
    actions = p.add_subparsers(dest="group_action", metavar="ACTION", required=True)
    group_help = "the group's name or 8+ hex digits of its id"
    peer_help = "a contact's name or fingerprint prefix (8+ hex digits)"
    create = actions.add_parser("create", help="a new group of you (admin) and these contacts")
    create.add_argument("group", metavar="NAME", help="the group's name")
    create.add_argument("peers", metavar="PEER", nargs="+", help=peer_help)
    for action, what in (
        ("add", "add a contact (admins)"),
        ("remove", "take a member out (admins)"),
        ("promote", "make a member an admin (admins)"),
    ):
        sub = actions.add_parser(action, help=what)
        sub.add_argument("group", metavar="GROUP", help=group_help)
        sub.add_argument("peer", metavar="PEER", help=peer_help)
    rename = actions.add_parser("rename", help="give a group another name (admins)")
    rename.add_argument("group", metavar="GROUP", help=group_help)
    rename.add_argument("new_name", metavar="NEW", help="the new name")
    disappear = actions.add_parser(
        "disappear", help="posts vanish after TIME: 30s..4w or off (admins)"
    )
    disappear.add_argument("group", metavar="GROUP", help=group_help)
    disappear.add_argument("time", metavar="TIME", help="30s, 5m, 1h, 1d, 1w (up to 4w) or off")
    leave = actions.add_parser("leave", help="leave a group")
    leave.add_argument("group", metavar="GROUP", help=group_help)
    actions.add_parser("list", help="your groups, their members and roles")
    send = actions.add_parser("send", help="write to a group (queued if no node runs)")
    send.add_argument("group", metavar="GROUP", help=group_help)
    send.add_argument("message", metavar="MESSAGE", nargs="+", help="the text to send")


CLI, STATUS, CONTACTS = "enclave.faces.cli", "enclave.faces.status", "enclave.faces.contacts"
# The order here is the order of ``enclave --help``.
SUBCOMMANDS: dict[str, Sub] = {
    "generate": Sub(CLI, "cmd_generate", _generate, "create your RSA-4096 identity", "enclave generate"),
    "import-key": Sub(CLI, "cmd_import_key", _import_key, "import the original client's private key", "enclave import-key keys/private_key.pem"),
    "change-password": Sub(CLI, "cmd_change_password", _change_password, "re-encrypt your identity under a new password", "enclave change-password"),
    "add": Sub(CONTACTS, "add", _add, "add or update a peer from its public key", "enclave add bob.pem --address 192.168.1.101:8000 --name bob"),
    "invite": Sub("enclave.faces.pairing", "invite", _invite, "make a short code; who joins with it becomes a verified contact", "enclave invite"),
    "join": Sub("enclave.faces.pairing", "join", _join, "become a verified contact of whoever gave you a code", "enclave join 7-harbor-velvet --peer-address 192.168.1.100:8000"),
    "rotate-key": Sub("enclave.faces.rotate", "run", _rotate_key, "replace your identity key; contacts switch to it without a warning", "enclave rotate-key"),
    "revoke": Sub("enclave.faces.rotate", "revoke", _revoke, "tell every contact your key is revoked (no password needed)", "enclave revoke --certificate /media/usb/revocation.cert"),
    "history": Sub("enclave.faces.history", "run", _history, "print a conversation (the last 50 messages by default)", "enclave history bob --limit 200"),
    "wipe": Sub("enclave.faces.wipe", "run", _wipe, "erase this home: identity, contacts, messages, settings", "enclave wipe"),
    "backup": Sub("enclave.faces.backup", "backup", _backup, "write identity, contacts, history and settings to one encrypted file", "enclave backup ~/enclave-backup.bak"),
    "restore": Sub("enclave.faces.backup", "restore", _restore, "rebuild a home from a backup file (asks the backup's password)", "enclave restore enclave-backup.bak --home ~/enclave-restored"),
    "web-sessions": Sub("enclave.faces.web_sessions", "run", _web_sessions, "list or sign out the browsers kept signed in to the page", "enclave web-sessions --revoke 3f2a"),
    "peers": Sub(CLI, "cmd_peers", _nothing, "list known peers", "enclave peers"),
    "fingerprint": Sub(CLI, "cmd_fingerprint", _nothing, "print your fingerprint, to compare out of band", "enclave fingerprint"),
    "public-key": Sub(CLI, "cmd_public_key", _nothing, "print your public key (PEM) to share", "enclave public-key > alice.pem"),
    "listen": Sub("enclave.faces.repl", "run", _listen, "chat in the terminal (headless without one)", "enclave listen --host 127.0.0.1 --port 8000"),
    "web": Sub("enclave.faces.web", "run", _web, "chat in the browser (prints the address to open)", "enclave web --web-port 5000"),
    "send": Sub("enclave.faces.send", "run", _send, "send one message and exit", 'enclave send bob "See you at 5"'),
    "reply": Sub("enclave.faces.send", "reply", _reply, "send one message quoting another of the conversation, and exit", 'enclave reply bob k3f9 "Yes, at five"'),
    "send-file": Sub("enclave.faces.send_file", "run", _send_file, "send files (queued if no node runs)", "enclave send-file bob report.pdf --wait"),
    "group": Sub("enclave.faces.groups", "run", _group, "group chat: create, add, remove, promote, rename, leave, list, send", 'enclave group create team bob carol; enclave group send team "Standup in 5"'),
    "remove": Sub(CONTACTS, "remove", _remove, "remove a peer from your contacts", "enclave remove bob --yes"),
    "clear": Sub(CONTACTS, "clear", _remove, "erase your history with a peer on this device", "enclave clear bob --yes"),
    "delete": Sub("enclave.faces.delete", "run", _delete, "delete one message on this device (the peer keeps its copy)", "enclave delete bob k3f9"),
    "block": Sub(CONTACTS, "block", _peer, "refuse a peer's messages", "enclave block bob"),
    "receipts": Sub(CONTACTS, "receipts", _receipts, "allow or stop read receipts with a peer (both must allow them)", "enclave receipts bob on"),
    "keep-history": Sub(CONTACTS, "keep_history", _keep_history, "keep the history with a peer (on) or only show its messages (off)", "enclave keep-history bob off"),
    "disappear": Sub("enclave.faces.disappear", "run", _disappear, "messages with a peer vanish after a time, on both sides", "enclave disappear bob 1d"),
    "unblock": Sub(CONTACTS, "unblock", _peer, "accept a blocked peer again", "enclave unblock bob"),
    "rename": Sub(CONTACTS, "rename", _rename, "give a peer a new name", "enclave rename bob robert"),
    "nearby": Sub("enclave.faces.nearby", "run", _nothing, "Enclave nodes heard on the LAN (contacts and unknown)", "enclave nearby"),
    "status": Sub(STATUS, "status", _nothing, "your fingerprint, contacts, whether a node runs (also: bare enclave)", "enclave status"),
    "settings": Sub(STATUS, "settings", _nothing, "print the full configuration in effect", "enclave settings --set crypto_workers=4"),
    "completion": Sub("enclave.faces.parsers", "completion", _completion, "print a shell completion script", "enclave completion bash > ~/.local/share/bash-completion/completions/enclave"),
}  # fmt: skip
# The seed's flags: action dest -> (the flag, the subcommand it is an alias of)
SEED_FLAGS = {
    "generate": ("--generate", "generate"),
    "import_key": ("--import-key", "import-key"),
    "change_password": ("--change-password", "change-password"),
    "add_peer": ("--add-peer", "add"),
    "peers": ("--peers", "peers"),
    "fingerprint": ("--fingerprint", "fingerprint"),
    "public_key": ("--public-key", "public-key"),
    "listen": ("--listen", "listen"),
    "web": ("--web", "web"),
}


def build_subcommand(name: str) -> argparse.ArgumentParser:
    sub = SUBCOMMANDS[name]
    parser = Parser(
        prog=f"enclave {name}",
        description=f"{sub.summary[0].upper()}{sub.summary[1:]}.",
        epilog=f"example:\n  {sub.example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    sub.build(parser)
    add_global_options(parser.add_argument_group("global options (before or after the command)"))
    parser.set_defaults(set_overrides=None, json=False, verbose=False)
    return parser


def add_global_options(group) -> None:
    """The options accepted before or after any subcommand."""
    from enclave.node import settings  # standard library only, like this module

    add = group.add_argument
    add(
        "--home", metavar="DIR", help="home folder (default: $ENCLAVE_HOME or the user data folder)"
    ).complete = {**FILE_COMPLETION, "bash": "_shtab_compgen_dirs", "zsh": "_files -/"}
    add(
        "--password-file",
        metavar="FILE",
        help="read the password from the first line of FILE (mode 600: a file other users "
        "can read is refused)",
    ).complete = FILE_COMPLETION
    settings.add_arguments(group)


def completion(args) -> int:
    """``enclave completion SHELL``: the completion script shtab makes from the parsers."""
    import shtab

    print(shtab.complete(completion_parser(), shell=args.shell))
    return 0


def completion_parser() -> argparse.ArgumentParser:
    """Every subcommand as argparse subparsers: the shape shtab reads."""
    parser = argparse.ArgumentParser(prog="enclave", add_help=False)
    parser.add_argument("-h", "--help", action="help")
    parser.add_argument("--version", action="version", version=f"enclave {__version__}")
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command")
    for name, sub in SUBCOMMANDS.items():
        p = subparsers.add_parser(name, help=sub.summary, description=sub.summary)
        sub.build(p)
        add_global_options(p)
    return parser


# --- bare ``enclave`` and the seed's flags ----------------------------------------------

EPILOG = """\
examples:
  enclave generate                         create your identity (asks a password twice)
  enclave public-key > alice.pem           write your public key to share with peers
  enclave add bob.pem --address 192.168.1.101:8000 --name bob
  enclave listen                           chat in the terminal (every interface, port 8000)
  enclave listen --host 127.0.0.1          ... reachable from this machine only
  enclave send bob "See you at 5"          send one message and exit
  enclave --home /srv/enclave send bob "Backup done"
                                           global options go before or after the command

the seed's flags still work: --generate, --import-key FILE, --change-password,
  --add-peer FILE --peer-address HOST:PORT, --peers, --fingerprint, --public-key,
  --listen [--port --host], --web

environment:
  ENCLAVE_HOME          home folder (default: the platform's user data folder,
                        e.g. ~/.local/share/enclave)
  ENCLAVE_PASSWORD      identity password for scripts and services (or --password-file)
  ENCLAVE_NEW_PASSWORD  the new password for change-password and import-key, a
                        backup's own password (or --new-password-file)
"""
# --web never prompts: its page asks (create or unlock); a file or variable may unlock at start.
_PASSWORD_ACTIONS = {"generate", "import_key", "change_password", "listen", "add_peer", "peers"}
# seed modifier (dest) -> (flag, the seed actions it goes with)
MODIFIERS = {
    "peer_address": ("--peer-address", {"add_peer"}),
    "name": ("--name", {"add_peer"}),
    "protocol": ("--protocol", {"add_peer"}),
    "force": ("--force", {"generate", "import_key", "add_peer"}),
    "password_file": ("--password-file", _PASSWORD_ACTIONS | {"web"}),
    "new_password_file": ("--new-password-file", {"change_password", "import_key"}),
    "port": ("--port", {"listen", "web"}),
    "host": ("--host", {"listen", "web"}),
    "json": ("--json", {"listen"}),
    "verbose": ("--verbose", {"listen", "web"}),
    "downloads": ("--downloads", {"listen", "web"}),
    "no_discovery": ("--no-discovery", {"listen", "web"}),
    "web_port": ("--web-port", {"web"}),
    "web_host": ("--web-host", {"web"}),
    "web_cert": ("--web-cert", {"web"}),
    "web_key": ("--web-key", {"web"}),
    "set_overrides": ("--set", {"listen", "web"}),
}


def _commands_text() -> str:
    width = max(len(name) for name in SUBCOMMANDS) + 2
    rows = [f"  {name.ljust(width)}{sub.summary}" for name, sub in SUBCOMMANDS.items()]
    return "\n".join(["commands (enclave COMMAND --help shows its options and an example):", *rows])


def build_parser() -> argparse.ArgumentParser:
    """``enclave`` without a subcommand: status, ``--help``, ``--version``, the seed's flags."""
    parser = Parser(
        prog="enclave",
        usage="%(prog)s COMMAND [options]\n       %(prog)s [--home DIR]       (status)\n"
        "       %(prog)s --ACTION [options] (the seed's flags)",
        description="Enclave: secure peer-to-peer messaging with no server in between.\n\n"
        + _commands_text(),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
        add_help=False,
    )
    options = parser.add_argument_group("options")
    options.add_argument("-h", "--help", action="help", help="show this help and exit")
    add_global_options(options)
    options.add_argument(
        "--version", action="version", version=f"enclave {__version__}", help="print the version"
    )
    _add_seed_actions(parser.add_argument_group("the seed's flags (one per run)"))
    _add_seed_modifiers(parser.add_argument_group("options of the seed's flags"))
    parser.set_defaults(set_overrides=None)  # None, not [], so "not given" reads as unset
    return parser


def _add_seed_actions(group) -> None:
    add = group.add_mutually_exclusive_group().add_argument
    add("--generate", action="store_true", help="= enclave generate")
    add("--import-key", metavar="FILE", help="= enclave import-key FILE")
    add("--change-password", action="store_true", help="= enclave change-password")
    add("--add-peer", metavar="FILE", help="= enclave add FILE (with --peer-address)")
    add("--peers", action="store_true", help="= enclave peers")
    add("--fingerprint", action="store_true", help="= enclave fingerprint")
    add("--public-key", action="store_true", help="= enclave public-key")
    add("--listen", action="store_true", help="= enclave listen")
    add("--web", action="store_true", help="= enclave web")


def _add_seed_modifiers(group) -> None:
    add = group.add_argument
    add("--peer-address", metavar="HOST:PORT", help="the peer's address, with --add-peer")
    add("--name", help="a short name for the peer, with --add-peer")
    add("--protocol", choices=("auto", "v1"), help="with --add-peer: see enclave add --help")
    add("--force", action="store_true", help="with --generate, --import-key or --add-peer")
    add("--new-password-file", metavar="FILE", help="with --change-password or --import-key")
    add("--port", metavar="PORT", help=f"with --listen or --web (default {DEFAULT_PORT})")
    add("--host", metavar="HOST", help=f"with --listen or --web (default {DEFAULT_LISTEN_HOST})")
    add("--json", action="store_true", help="with --listen: events as JSON lines")
    add("--verbose", action="store_true", help="with --listen or --web: the full settings")
    add("--downloads", metavar="DIR", help="with --listen or --web: where received files go")
    add("--no-discovery", action="store_true", help="with --listen or --web: no LAN discovery")
    _web_options(group)
