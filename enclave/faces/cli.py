"""The ``enclave`` command: a subcommand per action, the seed's flags as aliases.

Rules:
- Only argparse, os, sys, the standard-library-only ``enclave.errors`` and
  ``enclave.faces.parsers`` are imported at the top. Each command imports what it
  needs, so ``enclave --help`` and ``--version`` never load cryptography, the store,
  asyncio or the protocol.
- ``parsers.SUBCOMMANDS`` says what runs each subcommand (``module.function(args)``,
  imported when it runs). The seed's flags (``--generate``, ``--add-peer FILE``...) are
  aliases: ``parse`` turns either form into the same ``(subcommand, args)``.
- Seed flags: one action per run (an argparse mutually exclusive group). Every other
  flag is a modifier valid only with the actions listed in ``parsers.MODIFIERS``.
- The global options (``--home``, ``--password-file``, ``--set``) say where and how
  Enclave runs, not what it does: they go before or after a subcommand
  (``enclave --home DIR send bob hi`` and ``enclave send bob hi --home DIR``).
- Bare ``enclave`` (global options at most) is ``enclave status``.
- Every command this module suggests is one that works as printed for the home in use
  (``Home.command`` adds ``--home DIR`` when it is not the default).
- Everything a person typed is checked before the store is opened or a file written,
  so a mistake leaves the home folder as it was.
- ``UserError`` is printed as one line, ``enclave: error: ...``, exit status 2.
  Ctrl-C exits with 130 and no traceback. Anything else is a bug and keeps its traceback.
- Passwords never come from argv: a terminal prompt, ``ENCLAVE_PASSWORD`` or
  ``--password-file`` (``enclave.identity.passwords``). A new password for
  ``change-password`` and ``import-key`` comes from its own sources
  (``ENCLAVE_NEW_PASSWORD``, ``--new-password-file``, two prompts), never from the old one's.
- ``listen``, ``web`` and ``send`` are run by ``enclave.faces.repl``, ``enclave.faces.web``
  and ``enclave.faces.send`` (``run(args) -> int``). They find the home folder with
  ``home_of(args)`` and unlock the identity with ``unlock(args)``.
"""

from __future__ import annotations

import argparse
import os
import sys

from enclave.errors import UserError
from enclave.faces import parsers
from enclave.faces.parsers import (
    DEFAULT_LISTEN_HOST,
    DEFAULT_PORT,
    DEFAULT_WEB_HOST,
    DEFAULT_WEB_PORT,
    MODIFIERS,
    SEED_FLAGS,
    SUBCOMMANDS,
)

_GLOBAL = {"home", "password_file", "set_overrides"}  # dests of the global options

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
        # The reader went away (``enclave peers | head``): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def main_web(argv: list[str] | None = None) -> int:
    """``enclave-web``: the same as ``enclave --web``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return main(["--web", *argv])


def _run(argv: list[str]) -> int:
    parsed = parse(argv)
    if parsed is None:
        return 0  # argparse already answered (--help, --version)
    name, args, typed = parsed
    sub = SUBCOMMANDS[name]
    if name in ("listen", "web"):
        _normalize_network_flags(args, name)
    if name in ("send", "reply"):
        args.message = " ".join(args.message)
    return _run_later(sub.module, typed, args, sub.function)


def parse(argv: list[str]) -> tuple[str, argparse.Namespace, str] | None:
    """``(subcommand, args, what the person typed for it)`` from either form of the
    command line; ``None`` when argparse already answered (``--help``, ``--version``)."""
    parser = parsers.build_parser()
    before, name, after = _split_at_subcommand(parser, argv)
    if name is not None:
        # The options before the subcommand join its own: global options go either side.
        args = _parse(parsers.build_subcommand(name), [*before, *after])
        return None if args is None else (name, args, f"enclave {name}")
    args = _parse(parser, argv)
    if args is None:
        return None
    action = _check_combination(args)
    if action is None:
        return "status", args, "enclave"
    flag, name = SEED_FLAGS[action]
    return name, args, flag


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
        if word in SUBCOMMANDS:
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


def _check_combination(args: argparse.Namespace) -> str | None:
    """The seed action chosen; ``None`` for none (global options at most: the status)."""
    chosen = [dest for dest in SEED_FLAGS if getattr(args, dest) not in (None, False)]
    if not chosen:
        given = [
            flag
            for dest, (flag, _) in MODIFIERS.items()
            if getattr(args, dest) and dest not in _GLOBAL
        ]
        if given:
            raise UserError(f"{given[0]} needs an action such as --add-peer; see enclave --help")
        return None
    action = chosen[0]
    for dest, (flag, allowed) in MODIFIERS.items():
        if getattr(args, dest) not in (None, False) and action not in allowed:
            goes_with = " or ".join(sorted(SEED_FLAGS[a][0] for a in allowed))
            raise UserError(f"{flag} goes with {goes_with}, not with {SEED_FLAGS[action][0]}")
    return action


def _normalize_network_flags(args: argparse.Namespace, action: str) -> None:
    from enclave.node.addresses import parse_host, parse_port

    args.port = DEFAULT_PORT if args.port is None else parse_port(args.port)
    args.host = DEFAULT_LISTEN_HOST if args.host is None else parse_host(args.host)
    if action == "web":
        args.web_port = DEFAULT_WEB_PORT if args.web_port is None else parse_port(args.web_port)
        args.web_host = DEFAULT_WEB_HOST if args.web_host is None else parse_host(args.web_host)


def _run_later(module: str, typed: str, args: argparse.Namespace, function: str = "run") -> int:
    import importlib

    try:
        part = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        raise UserError(f"{typed} is not available in this build yet") from None
    return getattr(part, function)(args) or 0


# --- helpers for every part of Enclave ----------------------------------------------


def home_of(args: argparse.Namespace):
    """The home folder chosen by ``--home`` / ``ENCLAVE_HOME`` / the platform default."""
    from enclave.identity import home

    return home.resolve(getattr(args, "home", None))


def unlock(args: argparse.Namespace):
    """Ask for the password (or read it) and return the unlocked ``keys.Identity``."""
    return unlock_with_password(args)[0]


def unlock_with_password(args: argparse.Namespace):
    """``unlock``, and the password that opened the identity (``enclave backup`` seals
    with it): ``(identity, password)``."""
    from enclave.identity import home, keys, passwords

    place = home.require_identity(home_of(args))
    password = passwords.existing(
        f"Password for {place.key_path}: ", password_file=getattr(args, "password_file", None)
    )
    return keys.load_identity(place, password), password


def store_key(args: argparse.Namespace) -> bytes:
    """The store key (``unlock``): what reads and writes contact names and history with
    no node running. A command that opens the store twice asks the password once."""
    key = getattr(args, "unlocked_store_key", None)
    if key is None:
        key = args.unlocked_store_key = unlock(args).store_key
    return key


def message_named(text: str) -> tuple[str, str | None]:
    """A message as a command's REF names it: ``(ref, direction)`` for the node's
    ``find_message`` (a full id's direction is "either": the one that has it). Anything
    else is a one-line mistake before any password is asked."""
    from enclave.node.display import ref_kind

    kind = ref_kind(text)
    if kind is None:
        shown = _printable(text[:40])
        raise UserError(
            f"{shown!r} names no message: REF is the #ref enclave history shows (like "
            "k3f9 or '#k3f9') or a message's full id (32 hex digits, enclave history --json)"
        )
    return text.lower(), ("either" if kind == "id" else None)


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
    print(f"Share your public key with: {place.command('public-key', '> my-key.pem')}")
    _write_revocation_certificate(place, identity)
    return 0


def _write_revocation_certificate(place, identity) -> None:
    import time

    from enclave.node.key_rotation import write_revocation_certificate

    path = write_revocation_certificate(place, identity.private_key, time.time_ns() // 10**6)
    print(f"Revocation certificate (no password needed to use it): {path}")
    print(
        "Copy it somewhere offline (a USB stick, a printout); whoever holds it can revoke your key"
    )


def cmd_import_key(args: argparse.Namespace) -> int:
    from enclave.identity import home, keys, passwords

    source = args.import_key
    data = home.read_file(path_of(source), "private key", keys.MAX_FILE_BYTES)
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
    from enclave.identity import home, keys, passwords, retired

    identity = unlock(args)
    password = passwords.replacement(password_file=args.new_password_file)
    place = home.require_identity(home_of(args))
    keys.save_identity(
        place, identity.private_key, password, force=True, store_key=identity.store_key
    )
    # The keys it rotated away from still answer contacts that have not switched.
    resealed = retired.reseal(place, identity.retired, lambda k: keys.encrypt_identity(k, password))
    print(f"Identity {keys.group(identity.fingerprint, 4)}... re-encrypted under the new password")
    if resealed:
        print(f"and the {resealed} key{'s' * (resealed != 1)} it rotated away from")
    return 0


def cmd_peers(args: argparse.Namespace) -> int:
    """``enclave peers``: the running node lists them (no password); with none running,
    the store does, after the password once names are sealed (docs/STORE.md)."""
    from enclave.faces import control, runner
    from enclave.identity import home, keys

    place = home_of(args)
    if not place.path.exists() or not place.db_path.exists():
        print(f"No peers yet. Add one: {add_peer_hint(place)}")
        return 0
    home.check(place)
    request = {"op": "contact", "action": "list", "peer": ""}
    answers = control.ask(runner.control_path(place.path), request)
    if answers is not None:
        peers = control.first_answer(answers)["peers"]
    else:
        peers = _peers_in_store(args, place)
    if not peers:
        print(f"No peers yet. Add one: {add_peer_hint(place)}")
        return 0
    rows = [("NAME", "FINGERPRINT", "ADDRESS", "VERIFIED", "PROTO")]
    for p in peers:
        name = (p["name"] or "-") + (" (blocked)" if p["blocked"] else "")
        name += " (revoked)" if p["revoked"] else ""
        verified = "yes" if p["verified"] else "no"
        rows.append(
            (
                name,
                keys.group(p["fingerprint"], 4),
                p["address"] or "-",
                verified,
                p["proto"] or "-",
            )
        )
    _print_table(rows)
    return 0


def listed_peer(p) -> dict:
    """A contact as ``enclave peers`` shows it (the control socket carries it as JSON)."""
    return {
        "fingerprint": p.fingerprint, "name": p.name, "address": p.address_text,
        "verified": p.verified, "proto": p.proto, "blocked": p.blocked, "revoked": p.revoked,
    }  # fmt: skip


def _peers_in_store(args: argparse.Namespace, place) -> list[dict]:
    from enclave.node.book import open_book

    with open_book(place.db_path) as book:
        peers, locked = book.contacts(), book.locked
    if peers and locked:  # the names are sealed: no password, no names
        with open_book(place.db_path, store_key=store_key(args)) as book:
            peers = book.contacts()
    return [listed_peer(p) for p in peers]


def cmd_fingerprint(args: argparse.Namespace) -> int:
    from enclave.identity import keys

    print(keys.group(keys.read_public_identity(home_of(args)).fingerprint))
    return 0


def cmd_public_key(args: argparse.Namespace) -> int:
    from enclave.identity import keys

    sys.stdout.write(keys.read_public_identity(home_of(args)).public_pem.decode("ascii"))
    return 0


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
    return place.command("add", "FILE", "--address", "HOST:PORT")


def path_of(text: str):
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
