"""``--no-discovery`` on every command that starts a node (listen, web and their seed
flags) becomes the ``discovery = false`` setting; elsewhere it is a one-line mistake."""

from __future__ import annotations

import pytest

from enclave.errors import UserError
from enclave.faces import cli
from enclave.node import settings


@pytest.mark.parametrize(
    "argv",
    [["listen", "--no-discovery"], ["--listen", "--no-discovery"], ["web", "--no-discovery"],
     ["--web", "--no-discovery"], ["--no-discovery", "listen"]],
)  # fmt: skip
def test_no_discovery_turns_the_setting_off(argv, tmp_path):
    _, args, _ = cli.parse(argv)
    assert settings.overrides_from(args) == {"discovery": False}
    assert settings.load(tmp_path, settings.overrides_from(args)).discovery is False


def test_discovery_is_on_by_default(tmp_path):
    _, args, _ = cli.parse(["listen"])
    assert settings.overrides_from(args) == {}
    assert settings.load(tmp_path).discovery is True


def test_no_discovery_with_a_command_that_starts_no_node_is_refused():
    with pytest.raises(UserError, match="--no-discovery goes with --listen or --web"):
        cli.parse(["--peers", "--no-discovery"])
