"""The home folder: where one Enclave identity keeps its key files and its database.

Rules:
- The folder is ``--home DIR``, else ``$ENCLAVE_HOME``, else the platform's user data
  folder (``platformdirs.user_data_dir("enclave")``, e.g. ``~/.local/share/enclave``).
- Enclave creates it with mode 0700. Inside: ``identity.key`` (0600, the encrypted
  private key, docs/KEYFILE.md), ``identity.pub`` (0644, SubjectPublicKeyInfo PEM) and
  ``enclave.db`` (the SQLite store).
- Like ssh, Enclave refuses to use a folder that other users can read or write, or a
  private key file other users can read, and says in one line which ``chmod`` fixes it.
  These checks run on every load, not only when the files are made.
- Files are written atomically (temporary file, fsync, rename), with their final mode
  set before the first byte is written, so a crash never leaves a half-written or
  briefly world-readable key.
- A command suggested to the user names its home folder (``Home.command``) unless it
  is the default one, and every path in a suggestion is quoted for the shell, so the
  suggestion works as printed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from enclave.errors import UserError

KEY_NAME = "identity.key"
PUB_NAME = "identity.pub"
DB_NAME = "enclave.db"
LOCK_NAME = "identity.lock"  # held while the key file is upgraded (keys._upgrade)
DIR_MODE = 0o700
KEY_MODE = 0o600
PUB_MODE = 0o644
# Owner-only permissions cannot be checked meaningfully on Windows.
_CHECK_MODES = os.name == "posix"


@dataclass(frozen=True)
class Home:
    """The paths of one home folder."""

    path: Path

    @property
    def key_path(self) -> Path:
        return self.path / KEY_NAME

    @property
    def pub_path(self) -> Path:
        return self.path / PUB_NAME

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

    def has_identity(self) -> bool:
        return self.key_path.exists() or self.pub_path.exists()

    def command(self, *words: str) -> str:
        """``enclave WORDS`` for this home, as a person types it in a shell: with
        ``--home DIR`` unless this is the default home (``$ENCLAVE_HOME`` may be unset
        where the command is run). ``words`` are shell text (placeholders, redirections)."""
        prefix = ["enclave"]
        if self.path != default_path():
            prefix += ["--home", shlex.quote(str(self.path))]
        return " ".join([*prefix, *words])


def resolve(cli_home: str | None = None, environ: dict[str, str] | None = None) -> Home:
    """Pick the home folder: ``--home``, then ``ENCLAVE_HOME``, then the platform default."""
    env = os.environ if environ is None else environ
    chosen = cli_home or env.get("ENCLAVE_HOME")
    if chosen:
        return Home(Path(chosen).expanduser().absolute())
    return Home(default_path())


def default_path() -> Path:
    """The platform's user data folder for Enclave, e.g. ``~/.local/share/enclave``."""
    import platformdirs

    return Path(platformdirs.user_data_dir("enclave", appauthor=False))


def prepare(home: Home) -> Home:
    """Create the folder (mode 0700) if it is missing, then check it like ``check``."""
    if not home.path.exists():
        try:
            home.path.mkdir(mode=DIR_MODE, parents=True)
            os.chmod(home.path, DIR_MODE)  # mkdir's mode is filtered by the umask
        except OSError as err:
            raise UserError(f"cannot create home folder {home.path}: {os_reason(err)}") from None
    return check(home)


def check(home: Home) -> Home:
    """Refuse a home folder or private key that other users can reach."""
    try:
        st = home.path.stat()
    except FileNotFoundError:
        raise UserError(
            f"no identity yet: {home.path} does not exist; run: {home.command('--generate')}"
        ) from None
    except OSError as err:
        raise UserError(f"cannot open home folder {home.path}: {os_reason(err)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UserError(f"home folder {home.path} is not a folder")
    if _CHECK_MODES:
        if st.st_uid != os.getuid():
            raise UserError(f"home folder {home.path} belongs to another user")
        if st.st_mode & 0o077:
            raise UserError(
                f"home folder {home.path} is open to other users "
                f"(mode {_mode(st)}); run: chmod 700 {shlex.quote(str(home.path))}"
            )
    check_private_key_mode(home.key_path)
    return home


def check_private_key_mode(path: Path) -> None:
    """Refuse a private key file that group or others can read or write (ssh's rule)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise UserError(f"private key {path} is not a regular file")
    if _CHECK_MODES and st.st_mode & 0o077:
        raise UserError(
            f"private key {path} is accessible by other users (mode {_mode(st)}), "
            f"so Enclave refuses to use it; run: chmod 600 {shlex.quote(str(path))}"
        )


def require_identity(home: Home) -> Home:
    """Check the folder and that both identity files are present."""
    check(home)
    if not home.key_path.exists():
        raise UserError(f"no identity yet in {home.path}; run: {home.command('--generate')}")
    if not home.pub_path.exists():
        raise UserError(
            f"public key {home.pub_path} is missing; restore it or run: "
            f"{home.command('--generate', '--force')}"
        )
    return home


def read_file(path: Path, what: str, limit: int) -> bytes:
    """Read a small file a person pointed us at; every failure is one line."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise UserError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a folder, not a file") from None
    except OSError as err:
        raise UserError(f"cannot read {what} {path}: {os_reason(err)}") from None
    if len(data) > limit:
        raise UserError(f"{what} {path} is too large ({limit} bytes at most)")
    return data


@contextlib.contextmanager
def locked(home: Home) -> Iterator[None]:
    """Hold the home's identity lock (another program's read-and-rewrite of the key
    file waits for ours)."""
    fd = os.open(home.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, KEY_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` with ``mode``, all or nothing."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, mode)  # the umask filtered the mode given to open()
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {os_reason(err)}") from None


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(path: Path) -> None:
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):03o}"


def os_reason(err: OSError) -> str:
    return err.strerror or type(err).__name__
