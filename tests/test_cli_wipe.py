"""``enclave wipe`` (issue 20, item 6) as a real process: refused while a node runs or
without a way to confirm; then identity, retired keys, store and settings are gone and
received files stay."""

from test_cli_pairing import Home
from test_cli_processes import enclave
from test_cli_rotation import introduce, node


def test_wipe_erases_the_home_but_received_files(tmp_path):
    alice, bob = Home(tmp_path, "alice"), Home(tmp_path, "bob")
    introduce(tmp_path, alice, bob)
    assert enclave(*alice.cmd("send", "bob", "SECRETMARKER queued")).returncode == 0
    assert enclave(*alice.cmd("rotate-key")).returncode == 0  # a retired key too
    downloads = alice.home / "downloads"
    downloads.mkdir()
    (downloads / "photo.jpg").write_bytes(b"the user's own file")
    asked = enclave(*alice.cmd("wipe"))  # no terminal: --yes is needed
    assert asked.returncode == 2 and "--yes" in asked.stderr
    a = node(alice)
    try:
        busy = enclave(*alice.cmd("wipe", "--yes"))
        assert busy.returncode == 2 and "stop it first" in busy.stderr
    finally:
        a.stop()
    done = enclave(*alice.cmd("wipe", "--yes"))
    assert done.returncode == 0, done.stderr
    assert "identity.key" in done.stdout and "enclave.db" in done.stdout
    assert "Kept your received files" in done.stdout
    assert sorted(p.name for p in alice.home.iterdir()) == ["downloads"]
    assert (downloads / "photo.jpg").read_bytes() == b"the user's own file"
    peers = enclave(*alice.cmd("peers"))
    assert "No peers yet" in peers.stdout
    again = enclave(*alice.cmd("fingerprint"))
    assert again.returncode == 2 and "no identity" in again.stderr.lower()


def test_a_link_in_the_home_is_removed_never_followed(tmp_path):
    from enclave.identity import home, wipe

    place = home.Home(tmp_path / "h")
    place.path.mkdir(mode=0o700)
    outside = tmp_path / "outside.txt"
    outside.write_text("not Enclave's")
    (place.path / "link").symlink_to(outside)
    (place.path / "sub").mkdir()
    (place.path / "sub" / "state").write_bytes(b"x" * 3000)
    assert wipe.wipe(place) == ["link", "sub"]
    assert outside.read_text() == "not Enclave's" and not place.path.exists()
