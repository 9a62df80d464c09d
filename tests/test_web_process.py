"""``enclave --web`` as a real process: it gives the address with a fresh token (once,
on a terminal; in a private file when its output is a log), never asks the terminal for
a password, answers only with the token, serves other machines only over HTTPS, and
stops cleanly on SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.ports import listen_port as free_port  # below the ephemeral range
from support.tls_helpers import self_signed

# Output that is not a terminal (these tests read a pipe) names the file with the token.
PIPED = re.compile(
    r"^Enclave web page: (https?://(\S+):(\d+))/ \(its address with this launch's token "
    r"is in (\S+), readable only by you\)$"
)
TOKEN = re.compile(r"#token=([A-Za-z0-9_-]{40,})$")


LAUNCHED: list[subprocess.Popen] = []
URL_WAIT = 60.0  # seconds; the address is printed well within one


@pytest.fixture(autouse=True)
def _no_process_left():
    """A failed test still ends the processes it started."""
    yield
    while LAUNCHED:
        proc = LAUNCHED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def launch(home, *extra, env_extra=None, web_port=None):
    env = {k: v for k, v in os.environ.items() if k != "ENCLAVE_PASSWORD"}
    env.update(env_extra or {})
    argv = [sys.executable, "-m", "enclave", "--web", "--home", str(home)]
    argv += ["--host", "127.0.0.1", "--port", str(free_port())]
    argv += ["--web-port", str(web_port or free_port())]
    proc = subprocess.Popen(
        [*argv, *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    LAUNCHED.append(proc)
    return proc


def read_url(proc) -> tuple[str, str]:
    """The base address printed, and the token from the file it names."""
    proc.seen = []
    watchdog = threading.Timer(URL_WAIT, proc.kill)  # a silent process ends the wait
    watchdog.start()
    try:
        return _read_url(proc)
    finally:
        watchdog.cancel()


def _read_url(proc) -> tuple[str, str]:
    for _ in range(20):  # bounded: the URL is among the first lines
        line = proc.stdout.readline()
        proc.seen.append(line)
        if not line:
            break
        found = PIPED.match(line.strip())
        if found:
            proc.token_file = Path(found.group(4))
            full = proc.token_file.read_text().strip()
            assert full.startswith(found.group(1) + "/#token="), full
            return found.group(1), TOKEN.search(full).group(1)
    proc.kill()
    raise AssertionError(f"no URL printed: {proc.seen}; stderr: {proc.stderr.read()}")


def get(url: str, token: str | None) -> tuple[int, dict]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def stop(proc) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def test_first_launch_prints_a_token_url_and_asks_nothing(tmp_path):
    proc = launch(tmp_path / "home")
    base, token = read_url(proc)
    assert get(f"{base}/api/state", token)[1]["state"] == "setup"
    assert get(f"{base}/api/state", None)[0] == 401
    wrong = ("y" if token[0] == "x" else "x") + token[1:]  # never the token itself
    assert get(f"{base}/api/state", wrong)[0] == 401
    code, out, err = stop(proc)
    assert code == 0, err
    assert "Traceback" not in err and "password" not in err.lower()
    # A new launch makes a new token.
    proc = launch(tmp_path / "home")
    assert read_url(proc)[1] != token
    assert stop(proc)[0] == 0


def test_a_password_from_the_environment_unlocks_at_start(rsa_keys, tmp_path):
    from support.keyfactory import PASSWORD

    from enclave.identity import home, keys

    keys.save_identity(home.Home(tmp_path / "home"), rsa_keys["carol"], PASSWORD)
    proc = launch(tmp_path / "home", env_extra={"ENCLAVE_PASSWORD": PASSWORD})
    base, token = read_url(proc)
    assert get(f"{base}/api/state", token)[1]["state"] == "ready"
    code, out, err = stop(proc)
    assert code == 0, err
    out = "".join(proc.seen) + out
    assert "Listening on 127.0.0.1:" in out and PASSWORD not in out + err


def test_binding_beyond_loopback_needs_tls_and_then_warns(tmp_path):
    proc = launch(tmp_path / "home", "--web-host", "0.0.0.0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and out == ""
    assert err.startswith("enclave: error: --web-host 0.0.0.0 lets other machines reach")
    assert "--web-cert FILE --web-key FILE" in err and len(err.splitlines()) == 1
    cert, key = self_signed(tmp_path / "tls")
    proc = launch(tmp_path / "home", "--web-host", "0.0.0.0", "--web-cert", cert, "--web-key", key)
    base, _ = read_url(proc)
    assert base.startswith("https://127.0.0.1:")
    code, _, err = stop(proc)
    assert code == 0 and "warning: the web page listens on 0.0.0.0:" in err


def test_a_busy_web_port_is_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = launch(tmp_path / "home", web_port=port)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.startswith("enclave: error: cannot open the web page on 127.0.0.1:")
    assert len(err.strip().splitlines()) == 1


# --- remote pages only over TLS (issue 14, item 7) ----------------------------------------


def refused(proc) -> str:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and out == "", (out, err)
    assert err.startswith("enclave: error: ") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def https_get(url: str, token: str, cafile: Path, **headers) -> tuple[int, dict]:
    """A GET that trusts only our certificate and checks the host name against it."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", **headers})
    context = ssl.create_default_context(cafile=str(cafile))
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_a_web_host_beyond_loopback_without_tls_never_starts(tmp_path, host):
    port = free_port()
    err = refused(launch(tmp_path / "home", "--web-host", host, web_port=port))
    assert f"--web-host {host} lets other machines reach the web page" in err
    assert "--web-cert FILE --web-key FILE" in err
    with socket.socket() as probe:  # nothing listens: it refused before binding
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("host", ["127.0.0.2", "127.255.255.254", "localhost", "::1"])
def test_loopback_web_hosts_need_no_tls(tmp_path, host):
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    proc = launch(tmp_path / "home", "--web-host", host)
    base, token = read_url(proc)
    assert base.startswith("http://")
    assert get(f"{base}/api/state", token)[0] == 200
    code, _, err = stop(proc)
    assert code == 0 and "warning" not in err


def tls_mistakes(tmp_path) -> dict[str, tuple[list, str]]:
    cert, key = self_signed(tmp_path / "good")
    other_cert, _ = self_signed(tmp_path / "other")
    _, locked = self_signed(tmp_path / "locked", password=b"secret")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    readable = tmp_path / "readable-key.pem"
    readable.write_bytes(key.read_bytes())
    os.chmod(readable, 0o644)
    return {
        "cert-alone": (["--web-cert", cert], "--web-cert and --web-key go together"),
        "key-alone": (["--web-key", key], "--web-cert and --web-key go together"),
        "missing": (["--web-cert", tmp_path / "nope.pem", "--web-key", key], "no such file"),
        "garbage": (["--web-cert", garbage, "--web-key", key], "is not a PEM certificate"),
        "mismatch": (["--web-cert", other_cert, "--web-key", key], "does not belong to"),
        "encrypted": (["--web-cert", cert, "--web-key", locked], "is encrypted"),
        "readable": (["--web-cert", cert, "--web-key", readable], f"chmod 600 {readable}"),
        "not-web": (["--listen", "--web-cert", cert], "not allowed with"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "cert-alone",
        "key-alone",
        "missing",
        "garbage",
        "mismatch",
        "encrypted",
        "readable",
        "not-web",
    ],
)
def test_tls_mistakes_are_one_line(tmp_path, case):
    extra, why = tls_mistakes(tmp_path)[case]
    err = refused(launch(tmp_path / "home", "--web-host", "0.0.0.0", *extra))
    assert why in err


def test_a_page_open_to_the_network_is_served_over_https(tmp_path, rsa_keys):
    from support.keyfactory import PASSWORD

    from enclave.identity import home, keys

    keys.save_identity(home.Home(tmp_path / "home"), rsa_keys["carol"], PASSWORD)
    cert, key = self_signed(tmp_path / "tls", dns=("localhost", "chat.test"))
    proc = launch(
        tmp_path / "home",
        *("--web-host", "0.0.0.0", "--web-cert", cert, "--web-key", key),
        env_extra={"ENCLAVE_PASSWORD": PASSWORD},
    )
    base, token = read_url(proc)
    port = base.rsplit(":", 1)[1]
    assert base == f"https://127.0.0.1:{port}"
    for name in ("127.0.0.1", "localhost"):  # the certificate's names, checked by the client
        status, body = https_get(f"https://{name}:{port}/api/state", token, cert)
        assert (status, body["state"]) == (200, "ready")
    # The certificate's names are this page's names too; any other name is refused.
    for name, expected in (("chat.test", 200), ("other.test", 403)):
        context = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", int(port), context=context, timeout=10)
        conn.request(
            "GET",
            "/api/state",
            headers={"Host": f"{name}:{port}", "Authorization": f"Bearer {token}"},
        )
        assert conn.getresponse().status == expected, name
        conn.close()
    with pytest.raises(OSError):  # the same port never speaks plain HTTP (URLError, reset)
        get(f"http://127.0.0.1:{port}/api/state", token)
    # The page's own origin over HTTPS passes the Origin check; its http:// twin does not.
    fake = "0" * 64
    url = f"{base}/api/peers/{fake}/read"
    context = ssl.create_default_context(cafile=str(cert))
    for origin, expected in ((f"http://127.0.0.1:{port}", 403), (base, 400)):
        request = urllib.request.Request(
            url,
            method="POST",
            data=b"{}",
            headers={
                "Authorization": f"Bearer {token}",
                "Origin": origin,
                "Content-Type": "application/json",
            },
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10, context=context)
        assert answer.value.code == expected, (origin, json.load(answer.value))
    code, out, err = stop(proc)
    assert code == 0, err
    assert "Traceback" not in err and token not in out + err


# --- the launch token: once, on the terminal, never in a log (issue 14, item 9) -----------


def test_a_terminal_shows_the_token_once(tmp_path):
    import select

    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if k != "ENCLAVE_PASSWORD"}
    argv = [sys.executable, "-m", "enclave", "--web", "--home", str(tmp_path / "home")]
    argv += ["--host", "127.0.0.1", "--port", str(free_port()), "--web-port", str(free_port())]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, env=env
    )
    LAUNCHED.append(proc)
    os.close(slave)
    screen = b""
    while b"create your identity on that page" not in screen:
        ready, _, _ = select.select([master], [], [], 30)
        assert ready, screen
        screen += os.read(master, 4096)
    token = re.search(rb"#token=([A-Za-z0-9_-]{40,})\r?\n", screen).group(1).decode()
    base = re.search(rb"Enclave web page: (http://\S+)/#token=", screen).group(1).decode()
    assert get(f"{base}/api/state", token)[0] == 200
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=30)[1].decode()
    try:
        while chunk := os.read(master, 4096):
            screen += chunk
    except OSError:  # the process closed the terminal
        pass
    os.close(master)
    assert proc.returncode == 0, err
    assert screen.decode().count(token) == 1 and token not in err
    assert not (tmp_path / "home" / "web.url").exists()


LOG_EVERYTHING = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(message)s")
for name in ("hypercorn", "hypercorn.error", "hypercorn.access", "quart", "asyncio", "enclave"):
    logging.getLogger(name).setLevel(logging.DEBUG)
from enclave.faces.cli import main
sys.exit(main(sys.argv[1:]))
"""


def websocket_handshake(base: str, offered: str, origin: str) -> bytes:
    """The status line of a WebSocket upgrade offering ``offered`` subprotocols."""
    host = base.split("://", 1)[1]
    name, port = host.rsplit(":", 1)
    with socket.create_connection((name, int(port)), timeout=10) as conn:
        conn.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: {offered}\r\n\r\n"
            ).encode()
        )
        return conn.recv(4096).split(b"\r\n", 1)[0]


def test_the_token_never_reaches_a_log(tmp_path):
    """Output that is not a terminal is a log (a pipe, a file, a journal): the token goes
    to a private file instead. Every logger, at DEBUG, sees the page used with it."""
    env = {k: v for k, v in os.environ.items() if k != "ENCLAVE_PASSWORD"}
    argv = [sys.executable, "-c", LOG_EVERYTHING, "--web", "--home", str(tmp_path / "home")]
    argv += ["--host", "127.0.0.1", "--port", str(free_port()), "--web-port", str(free_port())]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    LAUNCHED.append(proc)
    base, token = read_url(proc)
    assert stat.S_IMODE(proc.token_file.stat().st_mode) == 0o600
    assert proc.token_file.parent == tmp_path / "home"
    assert get(f"{base}/api/state", token)[0] == 200
    assert get(f"{base}/api/peers/{'0' * 64}/messages", token)[0] in (400, 409)
    assert get(f"{base}/api/state", token[::-1])[0] == 401
    assert get(f"{base}/nowhere?token={token[:8]}", token)[0] == 404
    offered = f"enclave.v1, enclave.token.{token}"
    assert websocket_handshake(base, offered, base).startswith(b"HTTP/1.1 101")
    assert websocket_handshake(base, offered, "http://evil.example").startswith(b"HTTP/1.1 403")
    code, out, err = stop(proc)
    out = "".join(proc.seen) + out
    assert code == 0, err
    assert token not in out and token not in err
    assert not proc.token_file.exists()  # removed at stop
