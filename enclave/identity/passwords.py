"""Where passwords come from: the identity's password, and a new one replacing it.

Rules:
- The identity's password: ``--password-file FILE`` wins, then ``$ENCLAVE_PASSWORD``,
  then a hidden prompt on the terminal (``getpass``).
- A new password that replaces another (``--change-password``; ``--import-key``, whose
  source file has its own password) has sources of its own: ``--new-password-file
  FILE``, then ``$ENCLAVE_NEW_PASSWORD``, then two prompts. It never comes from the
  old password's sources, so a script that gives only the old one gets an error, not
  the old password silently kept.
- A password file holds the password on its first line; the line ending is stripped,
  nothing else is. Like ssh with a private key, Enclave refuses a password file that
  group or others can read or write (it names the file and the ``chmod 600`` that fixes
  it); the mode is read from the opened file, so it cannot change between check and read.
- A new password is asked twice on a terminal and both must match. An empty password
  is refused everywhere; one shorter than 12 characters earns a warning on stderr.
- Without a terminal and without a file or variable, the error says how to give one.
- The password never appears in output, in error messages or in argv.

Standard library only, so the CLI can ask before it loads any cryptography.
"""

from __future__ import annotations

import getpass
import os
import shlex
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from enclave.errors import UserError

ENV_VAR = "ENCLAVE_PASSWORD"
NEW_ENV_VAR = "ENCLAVE_NEW_PASSWORD"
RECOMMENDED_LENGTH = 12
_MAX_FILE_BYTES = 4096
# Owner-only permissions cannot be checked meaningfully on Windows.
_CHECK_MODES = os.name == "posix"


@dataclass(frozen=True)
class _Source:
    """Where one kind of password may come from, and how the user names it."""

    env_var: str
    flag: str
    what: str  # "password file" or "new password file", in messages

    def how(self) -> str:
        return f"set {self.env_var} or pass {self.flag} FILE"


CURRENT = _Source(ENV_VAR, "--password-file", "password file")
REPLACEMENT = _Source(NEW_ENV_VAR, "--new-password-file", "new password file")


def existing(
    prompt: str, *, password_file: str | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """The password of something that already exists (one prompt)."""
    given = _given(CURRENT, password_file, environ)
    if given is not None:
        return given
    return _ask(prompt, CURRENT)


def new(
    what: str = "your Enclave identity",
    *,
    password_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The password of a new identity (``--generate``): the identity's own sources."""
    return _new(CURRENT, what, password_file, environ)


def replacement(
    what: str = "your Enclave identity",
    *,
    password_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """A new password replacing another: ``--new-password-file``, ``ENCLAVE_NEW_PASSWORD``
    or two prompts; never the old password's sources."""
    return _new(REPLACEMENT, what, password_file, environ)


def _new(
    source: _Source, what: str, password_file: str | None, environ: Mapping[str, str] | None
) -> str:
    password = _given(source, password_file, environ)
    if password is None:
        password = _ask(f"New password for {what}: ", source)
        if _ask("Repeat the password: ", source) != password:
            raise UserError("the two passwords do not match; nothing was changed")
    if len(password) < RECOMMENDED_LENGTH:
        print(
            f"enclave: warning: a password of {len(password)} characters is weak; "
            f"{RECOMMENDED_LENGTH} or more is recommended",
            file=sys.stderr,
        )
    return password


def _given(
    source: _Source, password_file: str | None, environ: Mapping[str, str] | None
) -> str | None:
    if password_file is not None:
        return _from_file(Path(password_file), source.what)
    env = os.environ if environ is None else environ
    if source.env_var in env:
        if not env[source.env_var]:
            raise UserError(f"{source.env_var} is set but empty")
        return env[source.env_var]
    return None


def _from_file(path: Path, what: str) -> str:
    try:
        with open(path, "rb") as fh:
            check_private_mode(os.fstat(fh.fileno()), path, what)
            data = fh.read(_MAX_FILE_BYTES)
    except FileNotFoundError:
        raise UserError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a folder, not a file") from None
    except OSError as err:
        raise UserError(f"cannot read {what} {path}: {err.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{what} {path} is not UTF-8 text") from None
    line = text.split("\n", 1)[0].removesuffix("\r")
    if not line:
        raise UserError(f"{what} {path} is empty (the password goes on its first line)")
    return line


def check_private_mode(st: os.stat_result, path: Path, what: str) -> None:
    """Refuse a secret that group or others can read or write (ssh's rule for keys)."""
    if _CHECK_MODES and st.st_mode & 0o077:
        raise UserError(
            f"{what} {path} is accessible by other users (mode {stat.S_IMODE(st.st_mode):03o}), "
            f"so Enclave refuses to use it; run: chmod 600 {shlex.quote(str(path))}"
        )


def _ask(prompt: str, source: _Source) -> str:
    if not sys.stdin.isatty():
        raise UserError(
            f"a {'new ' if source is REPLACEMENT else ''}password is needed and there is no "
            f"terminal to ask it on; {source.how()}"
        )
    try:
        password = getpass.getpass(prompt)
    except EOFError:
        raise UserError("no password given") from None
    if not password:
        raise UserError("an empty password is not allowed")
    return password
