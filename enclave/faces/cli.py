"""The ``enclave`` command: the seed's flags, one action per run.

Rules:
- Only argparse, os, sys and the standard-library-only ``enclave.errors`` are imported
  at the top. Each command imports what it needs, so ``enclave --help`` and
  ``--version`` never load cryptography, the store, asyncio or the protocol.
- One action per run (an argparse mutually exclusive group). Every other flag is a
  modifier valid only with the actions listed in ``_MODIFIERS``; any other use is an error.
- The global options (``--home``, ``--password-file``, ``--set``) say where and how
  Enclave runs, not what it does: they go before or after a subcommand
  (``enclave --home DIR send bob hi`` and ``enclave send --home DIR bob hi``).
- Every command this module suggests is one that works as printed for the home in use
  (``Home.command`` adds ``--home DIR`` when it is not the default).
- Everything a person typed is checked before the store is opened or a file written,
  so a mistake leaves the home folder as it was.
- ``UserError`` is printed as one line, ``enclave: error: ...``, exit status 2.
  Ctrl-C exits with 130 and no traceback. Anything else is a bug and keeps its traceback.
- Passwords never come from argv: a terminal prompt, ``ENCLAVE_PASSWORD`` or
  ``--password-file`` (``enclave.identity.passwords``). A new password for ``--change-password``
  and ``--import-key`` comes from its own sources (``ENCLAVE_NEW_PASSWORD``,
  ``--new-password-file``, two prompts), never from the old one's.
- ``--listen``, ``--web`` and ``send`` are run by ``enclave.faces.repl``, ``enclave.faces.web`` and
  ``enclave.faces.send`` (``run(args) -> int``). They find the home folder with
  ``home_of(args)`` and unlock the identity with ``unlock(args)``.
"""

from __future__ import annotations

import argparse
import os
import sys

from enclave import __version__
from enclave.errors import UserError

DEFAULT_PORT = 8000
DEFAULT_WEB_PORT = 5000
DEFAULT_WEB_HOST = "127.0.0.1"
DEFAULT_LISTEN_HOST = "0.0.0.0"
MAX_PEER_KEY_BYTES = 64 * 1024

EPILOG = """\
examples:
  enclave --generate                       create your identity (asks a password twice)
  enclave --public-key > alice.pem         write your public key to share with peers
  enclave --add-peer bob.pem --peer-address 192.168.1.101:8000 --name bob
  enclave --peers                          list known peers
  enclave --fingerprint                    show your fingerprint, to compare out of band
  enclave --listen --port 8000             chat in the terminal
  enclave --web                            chat in the browser (prints the address to open)
  enclave send bob "See you at 5"          send one message and exit
  enclave --import-key keys/private_key.pem
                                           bring in the original client's identity
  enclave --home /srv/enclave send bob "Backup done"
                                           global options go before or after send

environment:
  ENCLAVE_HOME          home folder (default: the platform's user data folder,
                        e.g. ~/.local/share/enclave)
  ENCLAVE_PASSWORD      identity password for scripts and services (or --password-file)
  ENCLAVE_NEW_PASSWORD  the new password for --change-password and --import-key
                        (or --new-password-file)
"""

# action (dest) -> the flag a person typed
_ACTIONS = {
    "generate": "--generate",
    "import_key": "--import-key",
    "change_password": "--change-password",
    "add_peer": "--add-peer",
    "peers": "--peers",
    "fingerprint": "--fingerprint",
    "public_key": "--public-key",
    "listen": "--listen",
    "web": "--web",
}
# --web never prompts: its page asks (create or unlock); a file or variable may unlock at start.
_PASSWORD_ACTIONS = {"generate", "import_key", "change_password", "listen"}
# modifier (dest) -> (flag, the actions it goes with)
_MODIFIERS = {
    "peer_address": ("--peer-address", {"add_peer"}),
    "name": ("--name", {"add_peer"}),
    "protocol": ("--protocol", {"add_peer"}),
    "force": ("--force", {"generate", "import_key", "add_peer"}),
    "password_file": ("--password-file", _PASSWORD_ACTIONS | {"web"}),
    "new_password_file": ("--new-password-file", {"change_password", "import_key"}),
    "port": ("--port", {"listen", "web"}),
    "host": ("--host", {"listen", "web"}),
    "web_port": ("--web-port", {"web"}),
    "web_host": ("--web-host", {"web"}),
    "web_cert": ("--web-cert", {"web"}),
    "web_key": ("--web-key", {"web"}),
    "set_overrides": ("--set", {"listen", "web"}),
}
# the later parts of Enclave, imported only when their action runs
_LATER = {"listen": "enclave.faces.repl", "web": "enclave.faces.web"}
# subcommand -> the part that runs it
_SUBCOMMANDS = {
    "send": "enclave.faces.send",
    "rename": "enclave.faces.contacts",
    "block": "enclave.faces.contacts",
    "unblock": "enclave.faces.contacts",
    "remove": "enclave.faces.contacts",
}


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one-line ``UserError``s like every other mistake."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="enclave",
        usage="%(prog)s ACTION [options]\n       %(prog)s [--home DIR] send PEER MESSAGE",
        description="Enclave: secure peer-to-peer messaging with no server in between.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
        add_help=False,
    )
    _add_actions(parser.add_argument_group("actions (one per run)"))
    options = parser.add_argument_group("options")
    # The order here is the order of ``enclave --help``.
    options.add_argument("-h", "--help", action="help", help="show this help and exit")
    _add_peer_modifiers(options)
    _add_global_options(options)
    _add_new_password_file(options)
    _add_network_modifiers(options)
    options.add_argument(
        "--version", action="version", version=f"enclave {__version__}", help="print the version"
    )
    parser.set_defaults(set_overrides=None)  # None, not [], so "not given" reads as unset
    return parser


def _add_actions(group) -> None:
    """The actions, one per run (``_ACTIONS``)."""
    add = group.add_mutually_exclusive_group().add_argument
    add("--generate", action="store_true", help="create your RSA-4096 identity")
    add("--import-key", metavar="FILE", help="import the original client's private key PEM")
    add(
        "--change-password",
        action="store_true",
        help="re-encrypt your identity under a new password",
    )
    add("--add-peer", metavar="FILE", help="add or update a peer from their public key PEM")
    add("--peers", action="store_true", help="list known peers")
    add("--fingerprint", action="store_true", help="print your fingerprint")
    add("--public-key", action="store_true", help="print your public key (PEM) to share")
    add("--listen", action="store_true", help="start the terminal chat, listening for peers")
    add("--web", action="store_true", help="start the local web page")


def _add_peer_modifiers(group) -> None:
    """The modifiers of ``--add-peer`` (and ``--force``, shared with the identity actions)."""
    add = group.add_argument
    add("--peer-address", metavar="HOST:PORT", help="the peer's address, with --add-peer")
    add("--name", help="a short name for the peer, with --add-peer")
    add(
        "--protocol",
        choices=("auto", "v1"),
        help="with --add-peer: v1 for a peer running only the original client "
        "(legacy, not forward-secret; refused for a peer that has spoken v2 unless "
        "--force); default auto",
    )
    add(
        "--force",
        action="store_true",
        help="replace an existing identity; with --add-peer --protocol v1, mark legacy a "
        "peer that has spoken Enclave's own protocol (v2)",
    )


def _add_new_password_file(group) -> None:
    """Where ``--change-password`` and ``--import-key`` read the new password."""
    group.add_argument(
        "--new-password-file",
        metavar="FILE",
        help="with --change-password or --import-key: read the new password from the first "
        "line of FILE (mode 600; or set ENCLAVE_NEW_PASSWORD; else asked twice)",
    )


def _add_network_modifiers(group) -> None:
    """Where ``--listen`` and ``--web`` listen for peers, and where ``--web`` serves its page."""
    add = group.add_argument
    add("--port", metavar="PORT", help=f"port to listen on for peers (default {DEFAULT_PORT})")
    add(
        "--host",
        metavar="HOST",
        help=f"address to listen on for peers (default {DEFAULT_LISTEN_HOST})",
    )
    add(
        "--web-port",
        metavar="PORT",
        help=f"port of the local web page (default {DEFAULT_WEB_PORT})",
    )
    add(
        "--web-host",
        metavar="HOST",
        help=f"address of the local web page (default {DEFAULT_WEB_HOST}); any address "
        "but a loopback one lets other machines reach it and needs --web-cert and --web-key",
    )
    add(
        "--web-cert",
        metavar="FILE",
        help="serve the web page over HTTPS with this certificate (PEM, chain first)",
    )
    add("--web-key", metavar="FILE", help="the private key (PEM) of --web-cert")


def _add_global_options(group) -> None:
    """The options accepted before or after any subcommand."""
    from enclave.node import settings  # standard library only, like this module

    add = group.add_argument
    add(
        "--home", metavar="DIR", help="home folder (default: $ENCLAVE_HOME or the user data folder)"
    )
    add(
        "--password-file",
        metavar="FILE",
        help="read the password from the first line of FILE (mode 600: a file other users "
        "can read is refused)",
    )
    settings.add_arguments(group)


def build_send_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="enclave send",
        description="Send one message to a known peer and exit.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "peer", metavar="PEER", help="peer name or fingerprint prefix (8+ hex digits)"
    )
    parser.add_argument("message", metavar="MESSAGE", nargs="+", help="the text to send")
    _add_global_options(parser)
    parser.set_defaults(set_overrides=None)
    return parser


_CONTACT_HELP = {
    "rename": "Give a contact another name.",
    "block": "Refuse a contact's connections and messages until it is unblocked.",
    "unblock": "Accept a blocked contact again; what was queued for it goes out.",
    "remove": "Forget a contact with its history and undelivered messages.",
}


def build_contact_parser(command: str) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"enclave {command}", description=_CONTACT_HELP[command], allow_abbrev=False
    )
    parser.add_argument("peer", metavar="PEER", help="name or fingerprint prefix (8+ hex digits)")
    if command == "rename":
        parser.add_argument("new_name", metavar="NEW", help="the new name (one word)")
    if command == "remove":
        parser.add_argument("--yes", action="store_true", help="remove without asking")
    _add_global_options(parser)
    parser.set_defaults(set_overrides=None)
    return parser


# --- entry points -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run ``enclave`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _run(argv)
    except UserError as err:
        print(f"enclave: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``enclave --peers | head``): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def main_web(argv: list[str] | None = None) -> int:
    """``enclave-web``: the same as ``enclave --web``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return main(["--web", *argv])


def _run(argv: list[str]) -> int:
    parser = build_parser()
    before, command, after = _split_at_subcommand(parser, argv)
    if command == "send":
        # The options before the subcommand join its own: global options go either side.
        args = _parse(build_send_parser(), [*before, *after])
        if args is None:
            return 0
        args.message = " ".join(args.message)
        return _run_later(_SUBCOMMANDS[command], f"enclave {command}", args)
    if command is not None:
        args = _parse(build_contact_parser(command), [*before, *after])
        if args is None:
            return 0
        from enclave.faces import contacts

        return getattr(contacts, command)(args)
    args = _parse(parser, argv)
    if args is None:
        return 0
    action = _check_combination(args)
    if action in _LATER:
        _normalize_network_flags(args, action)
        return _run_later(_LATER[action], _ACTIONS[action], args)
    return _COMMANDS[action](args)


def _split_at_subcommand(
    parser: argparse.ArgumentParser, argv: list[str]
) -> tuple[list[str], str | None, list[str]]:
    """``(options before it, subcommand, the rest)``; ``(argv, None, [])`` without one.

    The subcommand is the first word that is neither an option nor an option's value,
    so ``enclave --home send send bob hi`` sends from a home folder named "send"."""
    takes_value = {
        flag for action in parser._actions if action.nargs != 0 for flag in action.option_strings
    }
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            break
        if word.startswith("-") and word != "-":
            i += 2 if word in takes_value else 1  # --flag=value is one word
            continue
        if word in _SUBCOMMANDS:
            return argv[:i], word, argv[i + 1 :]
        break
    return argv, None, []


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | None:
    """Parse; ``None`` when argparse already answered (``--help``, ``--version``)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as done:
        if done.code not in (0, None):
            raise
        return None


def _check_combination(args: argparse.Namespace) -> str:
    chosen = [dest for dest in _ACTIONS if getattr(args, dest) not in (None, False)]
    if not chosen:
        given = [flag for dest, (flag, _) in _MODIFIERS.items() if getattr(args, dest)]
        if given:
            raise UserError(f"{given[0]} needs an action such as --add-peer; see enclave --help")
        start = home_of(args).command("--generate")
        raise UserError(f"nothing to do; start with {start}, or see enclave --help")
    action = chosen[0]
    for dest, (flag, allowed) in _MODIFIERS.items():
        if getattr(args, dest) not in (None, False) and action not in allowed:
            goes_with = " or ".join(sorted(_ACTIONS[a] for a in allowed))
            raise UserError(f"{flag} goes with {goes_with}, not with {_ACTIONS[action]}")
    return action


def _normalize_network_flags(args: argparse.Namespace, action: str) -> None:
    from enclave.node.addresses import parse_host, parse_port

    args.port = DEFAULT_PORT if args.port is None else parse_port(args.port)
    args.host = DEFAULT_LISTEN_HOST if args.host is None else parse_host(args.host)
    if action == "web":
        args.web_port = DEFAULT_WEB_PORT if args.web_port is None else parse_port(args.web_port)
        args.web_host = DEFAULT_WEB_HOST if args.web_host is None else parse_host(args.web_host)


def _run_later(module: str, flag: str, args: argparse.Namespace) -> int:
    import importlib

    try:
        part = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        raise UserError(f"{flag} is not available in this build yet") from None
    return part.run(args) or 0


# --- helpers for every part of Enclave ----------------------------------------------


def home_of(args: argparse.Namespace):
    """The home folder chosen by ``--home`` / ``ENCLAVE_HOME`` / the platform default."""
    from enclave.identity import home

    return home.resolve(getattr(args, "home", None))


def unlock(args: argparse.Namespace):
    """Ask for the password (or read it) and return the unlocked ``keys.Identity``."""
    from enclave.identity import home, keys, passwords

    place = home.require_identity(home_of(args))
    password = passwords.existing(
        f"Password for {place.key_path}: ", password_file=getattr(args, "password_file", None)
    )
    return keys.load_identity(place, password)


# --- the commands -------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    from enclave.identity import keys, passwords

    place = home_of(args)
    _refuse_existing_identity(place, args.force)
    password = passwords.new(password_file=args.password_file)
    print("Generating an RSA-4096 key; this takes a few seconds...", file=sys.stderr)
    identity = keys.save_identity(place, keys.generate(), password, force=args.force)
    print(f"Identity saved in {place.path}")
    print(f"Fingerprint: {keys.group(identity.fingerprint)}")
    print(f"Share your public key with: {place.command('--public-key', '> my-key.pem')}")
    return 0


def cmd_import_key(args: argparse.Namespace) -> int:
    from enclave.identity import home, keys, passwords

    source = args.import_key
    data = home.read_file(_path(source), "private key", keys.MAX_FILE_BYTES)
    place = home_of(args)
    _refuse_existing_identity(place, args.force)
    old = None
    if keys.is_encrypted_pem(data):
        old = passwords.existing(f"Password of {source}: ", password_file=args.password_file)
    private_key = keys.import_private_key(data, old, source=source)
    password = passwords.replacement(password_file=args.new_password_file)
    identity = keys.save_identity(place, private_key, password, force=args.force)
    print(f"Identity imported into {place.path}, re-encrypted with scrypt")
    print(f"Fingerprint: {keys.group(identity.fingerprint)}")
    print(f"{source} is weakly protected; delete it once Enclave works for you")
    return 0


def cmd_change_password(args: argparse.Namespace) -> int:
    from enclave.identity import home, keys, passwords

    identity = unlock(args)
    password = passwords.replacement(password_file=args.new_password_file)
    place = home.require_identity(home_of(args))
    keys.save_identity(place, identity.private_key, password, force=True)
    print(f"Identity {keys.group(identity.fingerprint, 4)}... re-encrypted under the new password")
    return 0


def cmd_add_peer(args: argparse.Namespace) -> int:

    from enclave.identity import home, keys
    from enclave.node.book import DowngradeRefused, open_book

    if args.peer_address is None:
        raise UserError("--add-peer needs --peer-address HOST:PORT, e.g. 192.168.1.100:8000")
    if args.force and args.protocol != "v1":
        raise UserError(
            "--force with --add-peer only forces --protocol v1 onto a peer that has spoken v2"
        )
    data = home.read_file(_path(args.add_peer), "peer key", MAX_PEER_KEY_BYTES)
    place = home_of(args)
    own = keys.read_public_identity(place)
    with open_book(place.db_path, own.fingerprint) as book:
        try:
            done = book.add(
                data,
                args.peer_address,
                args.name,
                args.protocol,
                force=args.force,
                source=args.add_peer,
            )
        except DowngradeRefused as err:
            raise UserError(
                f"{err}; only if it went back to the original client, add --force"
            ) from None
    if done.weak:
        print(f"enclave: warning: {done.weak}", file=sys.stderr)
    saved, added = done.peer, done.added
    label = saved.name if saved.name else keys.group(saved.fingerprint, 2)
    print(f"{'Added' if added else 'Updated'} peer {label} at {saved.address}")
    if done.downgraded:
        print(
            f"enclave: warning: {label} had spoken Enclave's own protocol (v2); it is now sent "
            "legacy v1, which its node refuses if it still runs Enclave",
            file=sys.stderr,
        )
    if saved.proto == "v1":
        print("Marked legacy (v1): messages to it are not forward-secret and are never confirmed.")
    print(f"Fingerprint: {keys.group(saved.fingerprint)}")
    if added:
        print(
            "Compare this fingerprint with your peer over a channel you trust before relying on it."
        )
    return 0


def cmd_peers(args: argparse.Namespace) -> int:
    from enclave.identity import home, keys

    place = home_of(args)
    if not place.path.exists() or not place.db_path.exists():
        print(f"No peers yet. Add one: {add_peer_hint(place)}")
        return 0
    home.check(place)
    from enclave.node.book import open_book

    with open_book(place.db_path) as book:
        peers = book.contacts()
    if not peers:
        print(f"No peers yet. Add one: {add_peer_hint(place)}")
        return 0
    rows = [("NAME", "FINGERPRINT", "ADDRESS", "VERIFIED", "PROTO")]
    for p in peers:
        name = (p.name or "-") + (" (blocked)" if p.blocked else "")
        verified = "yes" if p.verified else "no"
        rows.append(
            (name, keys.group(p.fingerprint, 4), p.address_text or "-", verified, p.proto or "-")
        )
    _print_table(rows)
    return 0


def cmd_fingerprint(args: argparse.Namespace) -> int:
    from enclave.identity import keys

    print(keys.group(keys.read_public_identity(home_of(args)).fingerprint))
    return 0


def cmd_public_key(args: argparse.Namespace) -> int:
    from enclave.identity import keys

    sys.stdout.write(keys.read_public_identity(home_of(args)).public_pem.decode("ascii"))
    return 0


_COMMANDS = {
    "generate": cmd_generate,
    "import_key": cmd_import_key,
    "change_password": cmd_change_password,
    "add_peer": cmd_add_peer,
    "peers": cmd_peers,
    "fingerprint": cmd_fingerprint,
    "public_key": cmd_public_key,
}


# --- small checks -------------------------------------------------------------------


def _refuse_existing_identity(place, force: bool) -> None:
    from enclave.identity import home

    if not place.path.exists():
        return
    home.check(place)
    if place.has_identity() and not force:
        raise UserError(
            f"an identity already exists in {place.path}; --force replaces it "
            "(peers who know the old fingerprint will no longer recognize you)"
        )


def add_peer_hint(place) -> str:
    return place.command("--add-peer", "FILE", "--peer-address", "HOST:PORT")


def _path(text: str):
    from pathlib import Path

    if not text:
        raise UserError("an empty file name was given")
    return Path(text).expanduser()


def _print_table(rows: list[tuple[str, ...]]) -> None:
    rows = [tuple(_printable(cell) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))


def _one_line(text: str) -> str:
    return _printable(" ".join(text.split("\n")))
