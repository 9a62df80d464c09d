"""``enclave backup FILE`` and ``enclave restore FILE``: a whole home in one encrypted
file, and back (``identity.backup`` writes it, ``identity.restore`` reads it).

Rules:
- ``backup`` checks FILE first (outside the home; an older backup is replaced, any
  other file is not), then the identity's password like every command that unlocks:
  the key must open, so nobody backs up a home whose password they do not know. The
  file is sealed under that password unless another one is given for it:
  ``ENCLAVE_NEW_PASSWORD``, ``--new-password-file`` or ``--new-password`` (asked twice).
- ``restore`` checks FILE's header and the home first (a home holding an identity
  needs ``--force``; none while a node runs on it), then asks the backup's password
  (``ENCLAVE_PASSWORD``, ``--password-file`` or the terminal): the one it was sealed
  under. The restored identity keeps its own password.
- A progress line on stderr while the bytes go, on a terminal only; nothing otherwise.
- SIGTERM meanwhile ends the command as Ctrl-C does, through its clean-up: no
  ``FILE.part`` and no half-restored folder stay behind.
- Each ends by saying what it did: files, size, whose identity, which password opens
  what, and where a replaced home went.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from enclave.errors import UserError
from enclave.faces import cli, runner
from enclave.faces.send_file import Progress, human

PROGRESS_EVERY = 0.1  # seconds between two progress lines


def backup(args) -> int:
    from enclave.identity import backup as backups
    from enclave.identity import home, keys

    place = home.require_identity(cli.home_of(args))
    target = cli.path_of(args.file)
    backups.check_target(place, target)  # before the password: a typo costs nothing
    _, password = cli.unlock_with_password(args)
    own = _backup_password(args)
    with _working("backup") as show:
        written = backups.write_backup(
            place, target, own or password, separate=own is not None, progress=show
        )
    print(f"Backed up {place.path} to {target}: {written.files} files, {human(written.size)}")
    print(
        f"Identity {keys.group(written.fingerprint, 4)}..., contacts, history and settings;"
        " not your received files (downloads/)"
    )
    if own is None:
        print("Sealed under your identity's password: enclave restore asks for it")
    else:
        print(
            "Sealed under the backup password you gave: enclave restore asks for that one;"
            " the identity inside keeps its own password"
        )
    return 0


def _backup_password(args) -> str | None:
    """A password of the backup's own, when one is given; ``None``: the identity's."""
    from enclave.identity import passwords

    given = args.new_password or args.new_password_file or passwords.NEW_ENV_VAR in os.environ
    if not given:
        return None
    return passwords.replacement("this backup", password_file=args.new_password_file)


def restore(args) -> int:
    from enclave.identity import home, keys, passwords
    from enclave.identity import restore as restoring

    place = cli.home_of(args)
    source = cli.path_of(args.file)
    restoring.read_header(source)  # not a backup, or cut in its header: no password asked
    restoring.check_destination(place, args.force)
    if runner.node_running(place.path):
        raise UserError("a node is running on this home; stop it first (Ctrl-D, /quit or SIGTERM)")
    password = passwords.existing(
        f"Password of the backup {source}: ", password_file=args.password_file
    )
    opened = restoring.open_backup(source, password)
    replaced = _identity_in(place)
    with _working("restore") as show:
        done = restoring.restore(opened, place, force=args.force, progress=show)
    made = time.strftime("%Y-%m-%d %H:%M", time.localtime(done.created_ms / 1000))
    print(
        f"Restored identity {keys.group(done.fingerprint, 4)}... into {place.path}:"
        f" {done.files} files (backup of {made})"
    )
    if replaced is not None:
        print(f"It replaced the identity {keys.group(replaced, 4)}... that was there")
    if done.aside is not None and replaced is not None:  # it was an Enclave home
        print(
            f"What was in {place.path} before is now in {done.aside}; erase it once you no "
            f"longer need it: {home.Home(done.aside).command('wipe')}"
        )
    elif done.aside is not None:
        print(f"What was in {place.path} before is now in {done.aside} (nothing was erased)")
    if done.separate:
        print("Unlock it with the identity's own password (the one it had), not the backup's")
    print(f"Start it: {place.command('listen')}")
    return 0


def _identity_in(place) -> str | None:
    """The fingerprint of the identity a restore replaces, if one is there and readable."""
    from enclave.identity import keys

    if not place.path.is_dir() or not place.has_identity():
        return None
    try:
        return keys.read_public_identity(place).fingerprint
    except UserError:
        return None


@contextlib.contextmanager
def _working(label: str):
    """While the bytes go: ``show(done, total)`` for the progress line, and SIGTERM
    unwinding through the clean-up instead of killing the process around it."""
    show, clear = _progress(label)
    before = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        yield show
    finally:
        signal.signal(signal.SIGTERM, before)
        clear()


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(128 + signum)


def _progress(label: str):
    """``(show(done, total), clear())``: a progress line on a terminal, else nothing."""
    if not sys.stderr.isatty():
        return None, lambda: None
    bars: list[Progress] = []  # made at the first bytes: its rate leaves scrypt out
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if not bars:
            bars.append(Progress(label))
            last[0] = now
        if done < total and now - last[0] < PROGRESS_EVERY:
            return
        last[0] = now
        bars[0].answer({"progress": done, "size": total})

    return show, lambda: bars and bars[0].done()
