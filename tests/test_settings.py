"""Settings: defaults, enclave.toml, --set overrides, presets and one-line errors."""

import argparse
import dataclasses

import pytest

from enclave.errors import UserError
from enclave.node import settings
from enclave.node.settings import CONFIG_NAME, KNOBS, Settings, load, overrides_from, presets


def write(home, text):
    path = home / CONFIG_NAME
    path.write_text(text, encoding="utf-8")
    return path


def one_line_error(home, overrides=None) -> str:
    with pytest.raises(UserError) as info:
        load(home, overrides)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    return message


def parse(*flags):
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return parser.parse_args(list(flags))


# -- defaults and files ----------------------------------------------------------------------


def test_defaults_without_a_file(tmp_path):
    loaded = load(tmp_path)
    assert loaded == Settings()
    assert loaded.max_connections == 2048
    assert loaded.max_per_address == 64
    assert loaded.preauth_per_address == 16
    assert loaded.crypto_workers == 2
    assert loaded.crypto_queue == 8
    assert loaded.handshake_burst_per_peer == 6.0
    assert loaded.handshake_rate_per_peer == 0.1
    assert loaded.legacy_v1 is True
    # Receive quotas per contact (PROTOCOL.md "Receive quotas"): far above what a person
    # sends, low enough that one contact cannot take the node from the others.
    assert loaded.receive_rate_per_peer == 1000.0 and loaded.receive_burst_per_peer == 4096.0
    assert loaded.receive_bytes_rate_per_peer == 1 << 20
    assert loaded.receive_bytes_burst_per_peer == 8 << 20
    assert loaded.stored_bytes_per_peer == 1 << 30
    # Files (issue 17): common files come without asking, the disk keeps room to work.
    assert loaded.file_auto_accept_bytes == 100 << 20
    assert loaded.file_disk_margin_bytes == 1 << 30
    assert loaded.file_pending_offers == 16
    assert loaded.downloads == ""
    assert loaded.source == "defaults"


def test_flat_file_is_loaded(tmp_path):
    path = write(
        tmp_path,
        "# tuned for a small box\n"
        "max_connections = 500\n"
        "crypto_workers = 4\n"
        "crypto_queue = 16\n"
        "idle_timeout = 12\n"  # an integer is accepted for a float knob
        "legacy_v1 = false\n",
    )
    loaded = load(tmp_path)
    assert loaded.max_connections == 500
    assert loaded.crypto_workers == 4
    assert loaded.crypto_queue == 16
    assert loaded.idle_timeout == 12.0 and isinstance(loaded.idle_timeout, float)
    assert loaded.legacy_v1 is False
    assert loaded.verify_rate == 2000.0  # untouched keys keep their defaults
    assert str(path) in loaded.source


def test_every_knob_can_be_set_from_the_file(tmp_path):
    defaults = Settings()
    lines = []
    for name in KNOBS:
        value = getattr(defaults, name)
        lines.append(f"{name} = {settings._show(value)}")
    write(tmp_path, "\n".join(lines) + "\n")
    assert load(tmp_path) == defaults


def test_node_table_is_refused_with_a_hint(tmp_path):
    path = write(tmp_path, "[node]\nmax_connections = 100\n")
    message = one_line_error(tmp_path)
    assert str(path) in message
    assert "'node'" in message and "top-level" in message


def test_empty_file_means_defaults(tmp_path):
    write(tmp_path, "")
    assert load(tmp_path) == Settings()


# -- errors: one line, naming the file and the key --------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("max_conections = 10", "max_conections", "did you mean 'max_connections'"),
        ("colour = 'blue'", "colour", "known keys"),
        ("max_connections = true", "max_connections", "not true/false"),
        ("max_connections = 1.5", "max_connections", "expected an integer"),
        ("max_connections = '100'", "max_connections", "expected an integer"),
        ("max_connections = 0", "max_connections", ">= 1"),
        ("max_connections = 10_000_000", "max_connections", "<= 1000000"),
        ("crypto_workers = 0", "crypto_workers", ">= 1"),
        ("crypto_workers = -2", "crypto_workers", ">= 1"),
        ("crypto_queue = 0", "crypto_queue", ">= 1"),
        ("connections_per_peer = 0", "connections_per_peer", ">= 1"),
        ("commit_batch = 0", "commit_batch", ">= 1"),
        ("idle_timeout = 0", "idle_timeout", "> 0"),
        ("idle_timeout = -1.0", "idle_timeout", "> 0"),
        ("idle_timeout = 'soon'", "idle_timeout", "expected a number"),
        ("idle_timeout = true", "idle_timeout", "not true/false"),
        ("idle_timeout = inf", "idle_timeout", "finite"),
        ("idle_timeout = nan", "idle_timeout", "finite"),
        ("keepalive_interval = 0.0", "keepalive_interval", "> 0"),
        ("dead_after = 0", "dead_after", "> 0"),
        ("verify_rate = 0", "verify_rate", "> 0"),
        ("verify_burst = 0.5", "verify_burst", ">= 1"),
        ("verify_rate_per_address = -5", "verify_rate_per_address", "> 0"),
        ("verify_burst_per_address = 0", "verify_burst_per_address", ">= 1"),
        ("handshake_rate_per_peer = 0", "handshake_rate_per_peer", "> 0"),
        ("handshake_burst_per_peer = 0", "handshake_burst_per_peer", ">= 1"),
        ("receive_rate_per_peer = 0", "receive_rate_per_peer", "> 0"),
        ("receive_burst_per_peer = 1023", "receive_burst_per_peer", ">= 1024"),
        ("receive_bytes_rate_per_peer = -1", "receive_bytes_rate_per_peer", "> 0"),
        ("receive_bytes_burst_per_peer = 1e6", "receive_bytes_burst_per_peer", ">= 2097152"),
        ("stored_bytes_per_peer = 1.5e9", "stored_bytes_per_peer", "expected an integer"),
        ("stored_bytes_per_peer = 1000", "stored_bytes_per_peer", ">= 1048576"),
        ("reconnect_min = 0", "reconnect_min", "> 0"),
        ("reconnect_max = [1, 2]", "reconnect_max", "expected a number"),
        ("legacy_v1 = 1", "legacy_v1", "true or false"),
        ("legacy_v1 = 'yes'", "legacy_v1", "true or false"),
        ("file_auto_accept_bytes = -1", "file_auto_accept_bytes", ">= 0"),
        ("file_auto_accept_bytes = 1e6", "file_auto_accept_bytes", "expected an integer"),
        (
            "file_auto_accept_bytes = 2_000_000_000_000",
            "file_auto_accept_bytes",
            "<= 1099511627776",
        ),
        ("file_disk_margin_bytes = -1", "file_disk_margin_bytes", ">= 0"),
        ("file_pending_offers = 0", "file_pending_offers", ">= 1"),
        ("file_pending_offers = 5000", "file_pending_offers", "<= 4096"),
        ("downloads = 'incoming'", "downloads", "expected an absolute folder"),
        ('downloads = "/a\\nb"', "downloads", "one line"),
        ("downloads = 3", "downloads", "expected a quoted word"),
        # relations between knobs
        ("max_per_address = 4096", "max_per_address", "at most max_connections (2048)"),
        ("max_connections = 10", "max_connections", "at least max_per_address (64)"),
        ("preauth_per_address = 65", "preauth_per_address", "at most max_per_address (64)"),
        ("crypto_workers = 16", "crypto_workers", "at most crypto_queue (8)"),
        ("crypto_queue = 1", "crypto_queue", "at least crypto_workers (2)"),
        ("dead_after = 15", "dead_after", "more than keepalive_interval (15.0)"),
        ("keepalive_interval = 60", "keepalive_interval", "less than dead_after (45.0)"),
        ("reconnect_min = 60", "reconnect_min", "at most reconnect_max (30.0)"),
        ("reconnect_max = 0.1", "reconnect_max", "at least reconnect_min (0.5)"),
    ],
)
def test_file_errors_are_one_line_naming_file_and_key(tmp_path, text, key, expected):
    path = write(tmp_path, text + "\n")
    message = one_line_error(tmp_path)
    assert message.startswith(f"{path}: ")
    assert key in message
    assert expected in message


def test_relation_between_two_file_keys(tmp_path):
    write(tmp_path, "max_connections = 100\nmax_per_address = 200\n")
    message = one_line_error(tmp_path)
    assert "max_per_address = 200" in message and "max_connections (100)" in message


def test_malformed_toml_names_the_line(tmp_path):
    path = write(tmp_path, "max_connections = 100\ncrypto_workers 4\n")
    message = one_line_error(tmp_path)
    assert message.startswith(f"{path}: not valid TOML")
    assert "line 2" in message


def test_duplicate_key_is_malformed(tmp_path):
    write(tmp_path, "crypto_workers = 2\ncrypto_workers = 3\n")
    assert "line 2" in one_line_error(tmp_path)


def test_non_utf8_file(tmp_path):
    (tmp_path / CONFIG_NAME).write_bytes(b"max_connections = 1\xff\n")
    message = one_line_error(tmp_path)
    assert CONFIG_NAME in message and "UTF-8" in message


def test_unreadable_settings_path(tmp_path):
    (tmp_path / CONFIG_NAME).mkdir()
    message = one_line_error(tmp_path)
    assert CONFIG_NAME in message and "cannot read" in message


def test_multiline_string_value_is_shown_on_one_line(tmp_path):
    write(tmp_path, 'legacy_v1 = """yes\nplease"""\n')
    assert "legacy_v1" in one_line_error(tmp_path)


# -- overrides ------------------------------------------------------------------------------


def test_overrides_win_over_the_file(tmp_path):
    write(tmp_path, "crypto_workers = 4\ncrypto_queue = 16\nlegacy_v1 = true\n")
    loaded = load(tmp_path, {"crypto_workers": 8, "legacy_v1": False})
    assert loaded.crypto_workers == 8
    assert loaded.crypto_queue == 16
    assert loaded.legacy_v1 is False
    assert "--set" in loaded.source and CONFIG_NAME in loaded.source


def test_overrides_are_validated_the_same_way(tmp_path):
    write(tmp_path, "crypto_workers = 4\n")
    message = one_line_error(tmp_path, {"crypto_workers": 0})
    assert message.startswith("--set: crypto_workers = 0:")
    message = one_line_error(tmp_path, {"crypto_worker": 3})
    assert message.startswith("--set: unknown key 'crypto_worker'")
    message = one_line_error(tmp_path, {"max_connections": True})
    assert message.startswith("--set: max_connections = true:")


def test_relation_blames_the_override(tmp_path):
    write(tmp_path, "max_connections = 100\n")
    message = one_line_error(tmp_path, {"max_per_address": 200})
    assert message.startswith("--set: max_per_address = 200: expected at most max_connections")
    message = one_line_error(tmp_path, {"max_connections": 10})
    assert message.startswith("--set: max_connections = 10: expected at least max_per_address")


def test_override_can_repair_a_file_relation(tmp_path):
    write(tmp_path, "max_connections = 10\n")
    assert load(tmp_path, {"max_per_address": 10, "preauth_per_address": 5}).max_per_address == 10


def test_set_flags_parse_as_toml_scalars(tmp_path):
    args = parse(
        "--set",
        "crypto_workers=4",
        "--set",
        "idle_timeout = 2.5",
        "--set",
        "legacy_v1=false",
        "--set",
        "commit_batch=1_000",
    )
    overrides = overrides_from(args)
    assert overrides == {
        "crypto_workers": 4,
        "idle_timeout": 2.5,
        "legacy_v1": False,
        "commit_batch": 1000,
    }
    loaded = load(tmp_path, overrides)
    assert loaded.crypto_workers == 4 and loaded.legacy_v1 is False


def test_no_set_flags_means_no_overrides(tmp_path):
    assert overrides_from(parse()) == {}
    assert overrides_from(argparse.Namespace()) == {}


def test_later_set_flag_wins():
    assert overrides_from(parse("--set", "crypto_workers=3", "--set", "crypto_workers=5")) == {
        "crypto_workers": 5
    }


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("crypto_workers", "KEY=VALUE"),
        ("=4", "KEY=VALUE"),
        ("crypto_workers=", "expected a value"),
        ("crypto_workers=four", "not a TOML value"),
        ("crypto_workers=4 5", "not a TOML value"),
        ("crypto_workers=[4]", "single number"),
        ("crypto_workers={a=1}", "single number"),
        ("crypto_workers=4\nlegacy_v1=false", "expected a value"),
    ],
)
def test_bad_set_flags(flag, expected):
    with pytest.raises(UserError) as info:
        overrides_from(parse("--set", flag))
    message = str(info.value)
    assert message.startswith("--set")
    assert expected in message
    assert "\n" not in message


def test_set_flag_with_wrong_type_names_the_key(tmp_path):
    message = one_line_error(tmp_path, overrides_from(parse("--set", "crypto_workers=2.0")))
    assert message.startswith("--set: crypto_workers = 2.0: expected an integer")


# -- presets and summary --------------------------------------------------------------------


def test_presets_are_valid_overrides(tmp_path):
    found = presets()
    assert set(found) == {"high-throughput", "low-latency"}
    for overrides in found.values():
        assert set(overrides) <= set(KNOBS)
        load(tmp_path, overrides)  # raises if any value is off


def test_presets_move_in_the_expected_directions(tmp_path):
    defaults = Settings()
    fast = load(tmp_path, presets()["high-throughput"])
    quick = load(tmp_path, presets()["low-latency"])
    assert fast.max_connections > defaults.max_connections
    assert fast.crypto_workers >= defaults.crypto_workers
    assert fast.crypto_queue > defaults.crypto_queue
    assert fast.commit_batch > defaults.commit_batch
    assert quick.crypto_queue < defaults.crypto_queue
    assert quick.idle_timeout == 10.0  # the seed's connection_timeout=10
    assert quick.dead_after < defaults.dead_after
    assert quick.reconnect_max < defaults.reconnect_max


def test_presets_combine_with_a_file(tmp_path):
    write(tmp_path, "max_per_address = 32\n")
    loaded = load(tmp_path, presets()["high-throughput"])
    assert loaded.max_per_address == 128  # the override wins


def test_summary_is_one_line_with_every_knob(tmp_path):
    path = write(tmp_path, "crypto_workers = 4\ncrypto_queue = 9\n")
    loaded = load(tmp_path, {"legacy_v1": False})
    line = loaded.summary()
    assert "\n" not in line
    assert line.startswith("settings: ")
    for name in KNOBS:
        assert f" {name}=" in line
    assert "crypto_workers=4 " in line and "legacy_v1=false " in line
    assert str(path) in line and "--set legacy_v1" in line
    assert Settings().summary().endswith("(defaults)")


def test_knobs_are_every_field_but_source():
    names = {f.name for f in dataclasses.fields(Settings)}
    assert names - set(KNOBS) == {"source"}


# -- direct construction -------------------------------------------------------------------


def test_settings_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().crypto_workers = 3  # type: ignore[misc]


def test_direct_construction_checks_the_same_rules():
    with pytest.raises(ValueError, match="crypto_workers"):
        Settings(crypto_workers=0)
    with pytest.raises(ValueError, match="max_per_address"):
        Settings(max_per_address=4096)
    with pytest.raises(ValueError, match="legacy_v1"):
        Settings(legacy_v1=1)  # type: ignore[arg-type]
    assert Settings(idle_timeout=5).idle_timeout == 5.0
    replaced = dataclasses.replace(Settings(), crypto_workers=3)
    assert replaced.crypto_workers == 3


def test_store_sync_is_a_word_from_the_file_or_a_flag(tmp_path):
    assert load(tmp_path).store_sync == "full"
    write(tmp_path, 'store_sync = "normal"\n')
    assert load(tmp_path).store_sync == "normal"
    assert load(tmp_path, overrides_from(parse("--set", "store_sync=full"))).store_sync == "full"
    assert (
        'store_sync="full"'
        in load(tmp_path, overrides_from(parse("--set", "store_sync=full"))).summary()
    )
    write(tmp_path, 'store_sync = "off"\n')
    assert 'store_sync = "off": expected one of "full", "normal"' in one_line_error(tmp_path)
    write(tmp_path, "store_sync = 1\n")
    assert "store_sync = 1: expected a quoted word" in one_line_error(tmp_path)


# -- files ---------------------------------------------------------------------------------


def test_file_auto_accept_bytes_from_a_flag(tmp_path):
    overrides = overrides_from(parse("--set", "file_auto_accept_bytes=0"))
    assert load(tmp_path, overrides).file_auto_accept_bytes == 0  # 0: always ask
    write(tmp_path, "file_auto_accept_bytes = 1048576\n")
    assert load(tmp_path).file_auto_accept_bytes == 1 << 20
    flag = overrides_from(parse("--set", "file_auto_accept_bytes=5_000"))
    assert load(tmp_path, flag).file_auto_accept_bytes == 5000  # the flag wins


def test_downloads_folder_default_file_and_flag(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    assert settings.downloads_folder(load(home), home) == home / "downloads"
    write(home, "downloads = '/srv/incoming'\n")
    assert settings.downloads_folder(load(home), home) == settings.Path("/srv/incoming")
    flag = overrides_from(parse("--set", "downloads=/tmp/in box"))  # taken as written
    assert load(home, flag).downloads == "/tmp/in box"
    quoted = overrides_from(parse("--set", "downloads='/tmp/q'"))
    assert load(home, quoted).downloads == "/tmp/q"
    tilde = load(home, {"downloads": "~/Downloads"})
    assert settings.downloads_folder(tilde, home) == settings.Path("~/Downloads").expanduser()
    reset = overrides_from(parse("--set", "downloads="))  # back to <home>/downloads
    assert settings.downloads_folder(load(home, reset), home) == home / "downloads"
    message = one_line_error(home, overrides_from(parse("--set", "downloads=rel/dir")))
    assert message.startswith("--set: downloads = 'rel/dir': expected an absolute folder")
    with pytest.raises(ValueError, match="downloads"):
        Settings(downloads="relative")
