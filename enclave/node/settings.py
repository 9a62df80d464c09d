"""The node's knobs: sane defaults, an optional ``enclave.toml`` in the home folder, flags.

Rules:
- Precedence: built-in defaults, then ``<home>/enclave.toml`` if it exists, then
  ``--set KEY=VALUE`` flags. Each layer is validated the same way.
- The file holds top-level keys only (a flat table, no ``[node]`` header), named exactly
  like the fields of ``Settings``. An unknown key, a wrong type, an out-of-range value or a
  malformed file is a ``UserError``: one line naming the file (or ``--set``), the key and
  what is expected. Nothing is silently ignored or clamped.
- Types: an integer knob takes a TOML integer (``true`` is not an integer); a float knob
  takes a float or an integer; ``legacy_v1`` and ``presence`` take ``true`` or ``false``. Floats are finite.
- The seed's tuning knobs map onto this design as follows: its connection-handler threads
  (``max_workers``) become connection caps (``max_connections``, ``max_per_address``,
  ``preauth_per_address``), since asyncio needs no thread per connection; its crypto
  workers (``num_message_workers``) are ``crypto_workers``; its queue bound
  (``Queue(5000)``) is ``crypto_queue`` for RSA jobs and ``commit_batch`` for the store;
  its ``connection_timeout`` is ``idle_timeout``. ``presets()`` holds the seed's two
  example configurations in these terms.
- Standard library only; no asyncio.

README section (for README.md):

    ### Configuration

    Enclave runs well with its defaults. To tune a node, put an `enclave.toml` in its
    home folder (next to `identity.key`) with any of these top-level keys:

    ```toml
    max_connections = 2048       # open TCP connections in total (authenticated or not)
    max_per_address = 64         # open connections from one source address
    preauth_per_address = 16     # of those, still in the handshake
    crypto_workers = 2           # threads for RSA private-key work
    crypto_queue = 8             # RSA jobs admitted at once; beyond it peers hear "busy"
    connections_per_peer = 3
    idle_timeout = 30.0          # seconds before an unused connection closes
    keepalive_interval = 15.0
    dead_after = 45.0            # a session silent this long is closed
    verify_rate = 2000.0         # handshake signature checks per second, all sources
    verify_burst = 4000.0
    verify_rate_per_address = 50.0
    verify_burst_per_address = 100.0
    handshake_rate_per_peer = 0.1    # handshakes per second one peer may cost us ...
    handshake_burst_per_peer = 6.0   # ... after a burst of this many
    receive_rate_per_peer = 1000.0         # messages per second one contact may send us ...
    receive_burst_per_peer = 4096.0        # ... after a burst of this many (at least 1024)
    receive_bytes_rate_per_peer = 1048576.0   # bytes per second one contact may send us ...
    receive_bytes_burst_per_peer = 8388608.0  # ... after a burst of this many (at least 2 MiB)
    stored_bytes_per_peer = 1073741824     # bytes of one contact's messages we keep (1 GiB)
    legacy_v1 = true             # accept messages from the original client
    commit_batch = 4096          # most messages written per store transaction
    store_sync = "full"          # "normal": safe against a crash of Enclave, not against power loss
    reconnect_min = 0.5          # reconnect backoff, seconds
    reconnect_max = 30.0
    presence = true              # keep a session open to every contact (online / last seen)
    presence_dials = 8           # ... opening at most this many connections at once
    first_frame_timeout = 5.0    # a new connection must send its first frame by then
    handshake_timeout = 10.0     # ... and complete the handshake by then
    file_auto_accept_bytes = 104857600   # a contact's file up to this size is taken without asking (100 MiB)
    file_disk_margin_bytes = 1073741824  # ... if the disk keeps this much free after it (1 GiB)
    file_pending_offers = 16     # unfinished file offers one contact may have with us
    downloads = ""               # where received files go; "" is <home>/downloads
    group_max_members = 256      # members a group may have (a bigger one is refused)
    max_groups = 256             # groups this node keeps; invitations beyond are refused
    display_name = ""            # the name your card offers when you pair by code ("": none)
    ```

    No section header: the keys sit at the top level of the file. Any flag
    `--set KEY=VALUE` (repeatable, values written as in TOML) overrides the file for one
    run, e.g. `enclave --listen --set crypto_workers=4 --set legacy_v1=false`. A typo, a
    wrong type or an impossible value stops Enclave with a one-line error naming the file
    and the key. The node prints the settings in effect on one line at start.

    Two starting points, after the original client's advanced configuration:
    **high-throughput** (more connections, a longer RSA queue, bigger store batches) and
    **low-latency** (few RSA jobs queued, so a busy node says so at once instead of
    queueing; short timeouts and quick reconnects).
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from enclave.errors import UserError

CONFIG_NAME = "enclave.toml"
FLAG_ORIGIN = "--set"


@dataclass(frozen=True)
class Settings:
    """Every knob of a node. Build it with ``load``; constructing it directly checks the
    same rules and raises ValueError (a bug in the caller, not the user's mistake)."""

    max_connections: int = 2048  # total open TCP connections (authenticated or not)
    max_per_address: int = 64  # open connections from one source address
    preauth_per_address: int = 16  # of those, not yet authenticated
    crypto_workers: int = 2  # threads for RSA private operations (they release the GIL)
    crypto_queue: int = 8  # private-op jobs admitted at once (running + waiting); beyond: busy
    connections_per_peer: int = 3
    idle_timeout: float = 30.0
    keepalive_interval: float = 15.0
    dead_after: float = 45.0
    verify_rate: float = 2000.0  # global public-key verifies per second
    verify_burst: float = 4000.0
    verify_rate_per_address: float = 50.0
    verify_burst_per_address: float = 100.0
    handshake_rate_per_peer: float = 0.1  # authenticated handshakes that cost private ops
    handshake_burst_per_peer: float = 6.0
    # Receive quotas per contact (docs/PROTOCOL.md, "Receive quotas"): what one
    # authenticated contact may make this node receive and keep. Beyond them its
    # messages wait, unstored and unacked, and it is told why (THROTTLE).
    receive_rate_per_peer: float = 1000.0  # messages per second ...
    receive_burst_per_peer: float = 4096.0  # ... after a burst (>= a batch: 1,024)
    receive_bytes_rate_per_peer: float = 1048576.0  # bytes per second (bodies + 64 each) ...
    receive_bytes_burst_per_peer: float = 8388608.0  # ... after a burst (>= 2 MiB, a batch)
    stored_bytes_per_peer: int = 1 << 30  # bytes of its messages the store may hold
    legacy_v1: bool = True  # accept the original client's envelopes (48 KiB pre-auth frames)
    commit_batch: int = 4096  # most messages per store transaction
    # "full": every commit (and so every ack we send) survives power loss; "normal"
    # (SQLite WAL synchronous=NORMAL): safe against a crash of Enclave, not power loss.
    store_sync: str = "full"
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    # Keep a session open to every contact (not blocked, not v1, with an address), so
    # its presence is known without a message; at most ``presence_dials`` dials at once.
    presence: bool = True
    presence_dials: int = 8
    first_frame_timeout: float = 5.0  # a new connection must send its first frame by then
    handshake_timeout: float = 10.0  # ... and finish the handshake by then
    # Files from contacts (issue 17). Up to file_auto_accept_bytes a file is taken
    # without asking: 100 MiB holds the photos, clips, documents and archives people
    # pass each other, and at LAN or good broadband speeds it moves in seconds to a
    # minute; anything larger waits for the user's yes. 0 asks for every file.
    file_auto_accept_bytes: int = 100 << 20
    # Free space a received file must leave on the downloads disk, or it waits for the
    # user even when small. A fixed 1 GiB rather than a share of the disk: 5% of a
    # 4 TB disk (200 GB) would refuse files for no reason, while 1 GiB is what the
    # system, the store's WAL and other programs need to keep working.
    file_disk_margin_bytes: int = 1 << 30
    # Unfinished offers (waiting, accepted or moving) one contact may have with us: a
    # person sends a handful at once; a flood of offers is refused, not stored.
    file_pending_offers: int = 16
    downloads: str = ""  # an absolute folder (~ allowed); "" is <home>/downloads
    # Members one group may have: a membership record growing a group past it is
    # refused (a flood of members costs every member a key and a session each).
    group_max_members: int = 256
    # Groups this node keeps: a contact cannot make it hold (and check) endless logs.
    max_groups: int = 256
    # The name this node's contact card offers when it pairs by code (a peer name:
    # letters, digits, '.', '_', '-'); "" offers none and the other side names us.
    display_name: str = ""
    # LAN discovery: announce this node's port and fingerprint on the local
    # network (mDNS) and listen for others'; false (or --no-discovery) turns both off.
    discovery: bool = True
    # Where the values came from, for ``summary``; not a knob.
    source: str = field(default="defaults", compare=False)

    def __post_init__(self) -> None:
        values = {name: getattr(self, name) for name in KNOBS}
        problem = _check_all(values, dict.fromkeys(KNOBS, "explicit"))
        if problem is not None:
            key, message = problem
            raise ValueError(f"Settings: {key} = {_show(values[key])}: {message}")
        for name in KNOBS:  # an int given for a float knob is stored as a float
            if _KINDS[name] is float:
                object.__setattr__(self, name, float(values[name]))

    def summary(self) -> str:
        """One line: every knob as ``key=value`` (TOML spelling), then where they came from."""
        parts = " ".join(f"{name}={_show(getattr(self, name))}" for name in KNOBS)
        return f"settings: {parts} ({self.source})"


KNOBS: tuple[str, ...] = tuple(f.name for f in fields(Settings) if f.name != "source")
_KINDS: dict[str, type] = {
    f.name: {"int": int, "float": float, "bool": bool, "str": str}[str(f.type)]
    for f in fields(Settings)
    if f.name != "source"
}
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Settings) if f.name != "source"}

# Per-key ranges: (lowest, lowest is allowed, highest or None).
_RANGES: dict[str, tuple[float, bool, float | None]] = {
    "max_connections": (1, True, 1_000_000),
    "max_per_address": (1, True, None),
    "preauth_per_address": (1, True, None),
    "crypto_workers": (1, True, 256),
    "crypto_queue": (1, True, 1_000_000),
    "connections_per_peer": (1, True, 64),
    "idle_timeout": (0.0, False, None),
    "keepalive_interval": (0.0, False, None),
    "dead_after": (0.0, False, None),
    "verify_rate": (0.0, False, None),
    "verify_burst": (1.0, True, None),
    "verify_rate_per_address": (0.0, False, None),
    "verify_burst_per_address": (1.0, True, None),
    "handshake_rate_per_peer": (0.0, False, None),
    "handshake_burst_per_peer": (1.0, True, None),
    "receive_rate_per_peer": (0.0, False, None),
    "receive_burst_per_peer": (1024, True, None),  # one batch (MAX_BATCH chats) must fit
    "receive_bytes_rate_per_peer": (0.0, False, None),
    "receive_bytes_burst_per_peer": (2 * 1024 * 1024, True, None),  # one batch must fit
    "stored_bytes_per_peer": (1024 * 1024, True, None),
    "commit_batch": (1, True, 1_000_000),
    "reconnect_min": (0.0, False, None),
    "reconnect_max": (0.0, False, None),
    "presence_dials": (1, True, 4096),
    "first_frame_timeout": (0.0, False, 60.0),
    "handshake_timeout": (0.0, False, 120.0),
    "file_auto_accept_bytes": (0, True, 1 << 40),  # the store's largest file (1 TiB)
    "file_disk_margin_bytes": (0, True, None),
    "file_pending_offers": (1, True, 4096),
    "group_max_members": (2, True, 1024),  # group_log.MAX_LIST members fit one record
    "max_groups": (1, True, 65536),
}

# Text knobs take one of these words.
_CHOICES: dict[str, tuple[str, ...]] = {"store_sync": ("full", "normal")}

# Text knobs that name a folder: empty (the default place), absolute, or ``~/...``.
# ``--set downloads=/srv/in`` takes the path as written, without TOML quotes.
_PATHS = frozenset({"downloads"})
DOWNLOADS_NAME = "downloads"


def _name_problem(value: str) -> str | None:
    """display_name is a peer name as the other side will see it: book.check_name's rule."""
    from enclave.node.book import check_name

    try:
        check_name(value)
    except UserError as err:
        return str(err)
    return None


# Relations between knobs: (key, relation, other key). Checked after every key alone.
_RELATIONS: tuple[tuple[str, str, str], ...] = (
    ("max_per_address", "<=", "max_connections"),
    ("preauth_per_address", "<=", "max_per_address"),
    ("crypto_queue", ">=", "crypto_workers"),
    ("dead_after", ">", "keepalive_interval"),
    ("reconnect_max", ">=", "reconnect_min"),
    ("handshake_timeout", ">=", "first_frame_timeout"),
)
_RELATION_WORDS = {"<=": "at most", ">=": "at least", ">": "more than"}


def presets() -> dict[str, dict[str, object]]:
    """The seed's two example configurations ("Advanced Configuration") as overrides.

    high-throughput: the seed raises its handler threads to 40, crypto workers to 8 and its
    queue to 5000. Here: twice the connections, up to 8 RSA threads (no more than the CPUs,
    since RSA on more threads than cores only queues), a deep RSA queue, bigger store
    batches and one more connection per peer.
    low-latency: the seed uses fewer threads and a 10 s connection timeout. Here: RSA jobs
    are refused rather than queued behind others, timeouts are short and reconnects quick.
    """
    cpus = os.cpu_count() or 2
    return {
        "high-throughput": {
            "max_connections": 4096,
            "max_per_address": 128,
            "crypto_workers": max(2, min(8, cpus)),
            "crypto_queue": 64,
            "connections_per_peer": 4,
            "commit_batch": 8192,
        },
        "low-latency": {
            "crypto_workers": 2,
            "crypto_queue": 2,
            "idle_timeout": 10.0,
            "keepalive_interval": 5.0,
            "dead_after": 15.0,
            "commit_batch": 256,
            "reconnect_min": 0.2,
            "reconnect_max": 10.0,
        },
    }


def load(home_dir: Path, overrides: dict[str, object] | None = None) -> Settings:
    """Defaults, then ``<home_dir>/enclave.toml`` if present, then ``overrides`` (flags)."""
    path = Path(home_dir) / CONFIG_NAME
    values = dict(_DEFAULTS)
    origins = dict.fromkeys(KNOBS, "default")
    table = _read(path)
    sources = [f"from {path}" if table is not None else "defaults"]
    if table is not None:
        _merge(values, origins, table, str(path))
    if overrides:
        sources.append(f"{FLAG_ORIGIN} {','.join(overrides)}")
        _merge(values, origins, overrides, FLAG_ORIGIN)
    problem = _check_all(values, origins)
    if problem is not None:
        key, message = problem
        raise UserError(f"{origins[key]}: {key} = {_show(values[key])}: {message}")
    return Settings(**values, source="; ".join(sources))


def downloads_folder(settings: Settings, home_dir: Path) -> Path:
    """Where received files go: the ``downloads`` setting, or ``<home>/downloads``."""
    if not settings.downloads:
        return Path(home_dir) / DOWNLOADS_NAME
    return Path(settings.downloads).expanduser()


def _path_problem(value: str) -> str | None:
    if not value:
        return None
    if any(c in value for c in "\x00\n\r"):
        return "expected a folder path on one line"
    if not Path(value).expanduser().is_absolute():
        return 'expected an absolute folder (or "" for <home>/downloads)'
    return None


def add_arguments(parser: Any) -> None:
    """Add ``--set KEY=VALUE`` (repeatable) to an argparse parser or argument group."""
    parser.add_argument(
        "--set",
        dest="set_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a setting of {CONFIG_NAME} for this run (repeatable), e.g. "
        "--set crypto_workers=4 --set legacy_v1=false",
    )


def overrides_from(args: Any) -> dict[str, object]:
    """The ``--set`` flags of parsed ``args`` as a dict; values are TOML scalars."""
    result: dict[str, object] = {}
    for item in getattr(args, "set_overrides", None) or []:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key:
            raise UserError(f"{FLAG_ORIGIN} {_one_line(item)}: expected KEY=VALUE")
        result[key] = _parse_scalar(key, text)
    if getattr(args, "no_discovery", False) is True:  # --no-discovery
        result["discovery"] = False
    downloads = getattr(args, "downloads", None)
    if isinstance(downloads, str) and downloads:  # --downloads DIR, as written
        result["downloads"] = str(Path(downloads).expanduser().absolute())
    return result


def _parse_scalar(key: str, text: str) -> object:
    where = f"{FLAG_ORIGIN} {_one_line(key)}={_one_line(text)}"
    if _KINDS.get(key) is str and text.isidentifier():
        return text  # a word knob: --set store_sync=normal, no TOML quotes needed
    if key in _PATHS and not text.startswith(("'", '"')) and "\n" not in text:
        return text  # a folder: --set downloads=/srv/in, as written
    if not text or "\n" in text or "\r" in text:
        raise UserError(f"{where}: expected a value such as 4, 2.5 or true")
    try:
        doc = tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError:
        raise UserError(f"{where}: not a TOML value; expected e.g. 4, 2.5 or true") from None
    value = doc.get("value")
    if len(doc) != 1 or isinstance(value, dict | list):
        raise UserError(f"{where}: expected a single number or true/false")
    return value


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise UserError(f"{path}: cannot read the settings file ({err.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not valid TOML: the file is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # The message ends "(at line N, column M)".
        raise UserError(f"{path}: not valid TOML: {_one_line(str(err))}") from None


def _merge(values: dict, origins: dict, given: dict, origin: str) -> None:
    for key, value in given.items():
        if not isinstance(key, str) or key not in _KINDS:
            raise UserError(f"{origin}: {_unknown(key, value)}")
        values[key] = _typed(key, value, origin)
        origins[key] = origin


def _unknown(key: object, value: object) -> str:
    text = f"unknown key {_one_line(str(key))!r}"
    if isinstance(value, dict):
        return f"{text}: settings are top-level keys, without a [{_one_line(str(key))}] header"
    import difflib  # only on this error path

    close = difflib.get_close_matches(str(key), KNOBS, n=1)
    if close:
        return f"{text} (did you mean {close[0]!r}?)"
    return f"{text}; known keys: {', '.join(KNOBS)}"


def _typed(key: str, value: object, origin: str) -> object:
    kind = _KINDS[key]
    problem = _type_problem(kind, value)
    if problem is not None:
        raise UserError(f"{origin}: {key} = {_show(value)}: {problem}")
    return float(value) if kind is float else value  # type: ignore[arg-type]


def _type_problem(kind: type, value: object) -> str | None:
    if kind is bool:
        return None if isinstance(value, bool) else "expected true or false"
    if kind is str:
        return None if isinstance(value, str) else "expected a quoted word"
    if isinstance(value, bool):
        return f"expected {'an integer' if kind is int else 'a number'}, not true/false"
    if kind is int:
        return None if isinstance(value, int) else "expected an integer"
    if not isinstance(value, int | float):
        return "expected a number"
    if not math.isfinite(value):
        return "expected a finite number"
    return None


def _check_all(values: dict[str, Any], origins: dict[str, str]) -> tuple[str, str] | None:
    """The first problem as (key, what is expected), or None."""
    for key in KNOBS:
        kind = _KINDS[key]
        problem = _type_problem(kind, values[key])
        if problem is None and key in _RANGES:
            problem = _range_problem(kind, values[key], *_RANGES[key])
        if problem is None and key in _CHOICES and values[key] not in _CHOICES[key]:
            problem = "expected one of " + ", ".join(f'"{c}"' for c in _CHOICES[key])
        if problem is None and key in _PATHS:
            problem = _path_problem(values[key])
        if problem is None and key == "display_name" and values[key]:
            problem = _name_problem(values[key])
        if problem is not None:
            return key, problem
    for key, relation, other in _RELATIONS:
        a, b = values[key], values[other]
        ok = a <= b if relation == "<=" else a >= b if relation == ">=" else a > b
        if ok:
            continue
        # Blame the knob that was set on purpose (a flag over the file over a default).
        if origins[key] == "default" and origins[other] != "default":
            key, other = other, key
            relation = {"<=": ">=", ">=": "<=", ">": "<"}[relation]
        words = _RELATION_WORDS.get(relation, "less than")
        return key, f"expected {words} {other} ({_show(values[other])})"
    return None


def _range_problem(
    kind: type, value: float, low: float, low_ok: bool, high: float | None
) -> str | None:
    noun = "an integer" if kind is int else "a number"
    if (value < low) or (value == low and not low_ok):
        bound = f">= {_show(kind(low))}" if low_ok else f"> {_show(kind(low))}"
        return f"expected {noun} {bound}" + (f" and <= {_show(kind(high))}" if high else "")
    if high is not None and value > high:
        return f"expected {noun} <= {_show(kind(high))}"
    return None


def _show(value: object) -> str:
    """A value as it would be written in TOML, on one short line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str) and value.isidentifier():
        return f'"{value}"'
    text = _one_line(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text or "\r" in text else text
