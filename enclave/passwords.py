"""Where the identity password comes from.

Rules:
- ``--password-file FILE`` wins, then ``$ENCLAVE_PASSWORD``, then a hidden prompt on the
  terminal (``getpass``). A password file holds the password on its first line; the
  line ending is stripped, nothing else is.
- A new password is asked twice on a terminal and both must match. An empty password
  is refused everywhere; one shorter than 12 characters earns a warning on stderr.
- Without a terminal and without a file or variable, the error says how to give one.
- The password never appears in output, in error messages or in argv.

Standard library only, so the CLI can ask before it loads any cryptography.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from enclave.errors import UserError

ENV_VAR = "ENCLAVE_PASSWORD"
RECOMMENDED_LENGTH = 12
_MAX_FILE_BYTES = 4096
_HOW = f"set {ENV_VAR} or pass --password-file FILE"


def existing(
    prompt: str, *, password_file: str | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """The password of something that already exists (one prompt)."""
    given = _given(password_file, environ)
    if given is not None:
        return given
    return _ask(prompt)


def new(
    what: str = "your Enclave identity",
    *,
    password_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """A new password (two matching prompts on a terminal)."""
    password = _given(password_file, environ)
    if password is None:
        password = _ask(f"New password for {what}: ")
        if _ask("Repeat the password: ") != password:
            raise UserError("the two passwords do not match; nothing was changed")
    if len(password) < RECOMMENDED_LENGTH:
        print(
            f"enclave: warning: a password of {len(password)} characters is weak; "
            f"{RECOMMENDED_LENGTH} or more is recommended",
            file=sys.stderr,
        )
    return password


def _given(password_file: str | None, environ: Mapping[str, str] | None) -> str | None:
    if password_file is not None:
        return _from_file(Path(password_file))
    env = os.environ if environ is None else environ
    if ENV_VAR in env:
        if not env[ENV_VAR]:
            raise UserError(f"{ENV_VAR} is set but empty")
        return env[ENV_VAR]
    return None


def _from_file(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_FILE_BYTES)
    except FileNotFoundError:
        raise UserError(f"password file {path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"password file {path} is a folder, not a file") from None
    except OSError as err:
        raise UserError(f"cannot read password file {path}: {err.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"password file {path} is not UTF-8 text") from None
    line = text.split("\n", 1)[0].removesuffix("\r")
    if not line:
        raise UserError(f"password file {path} is empty (the password goes on its first line)")
    return line


def _ask(prompt: str) -> str:
    if not sys.stdin.isatty():
        raise UserError(f"a password is needed and there is no terminal to ask it on; {_HOW}")
    try:
        password = getpass.getpass(prompt)
    except EOFError:
        raise UserError("no password given") from None
    if not password:
        raise UserError("an empty password is not allowed")
    return password
