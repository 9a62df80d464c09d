"""``enclave --web`` as a real process: it prints the address with a fresh token,
never asks the terminal for a password, answers only with the token, warns when it
is reachable from other machines, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

URL = re.compile(r"^Enclave web page: (http://127\.0\.0\.1:(\d+))/#token=([A-Za-z0-9_-]{40,})$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(home, *extra, env_extra=None, web_port=None):
    env = {k: v for k, v in os.environ.items() if k != "ENCLAVE_PASSWORD"}
    env.update(env_extra or {})
    argv = [sys.executable, "-m", "enclave", "--web", "--home", str(home)]
    argv += ["--host", "127.0.0.1", "--port", str(free_port())]
    argv += ["--web-port", str(web_port or free_port())]
    return subprocess.Popen(
        [*argv, *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_url(proc) -> tuple[str, str]:
    proc.seen = []
    for _ in range(20):  # bounded: the URL is among the first lines
        line = proc.stdout.readline()
        proc.seen.append(line)
        if not line:
            break
        found = URL.match(line.strip())
        if found:
            return found.group(1), found.group(3)
    proc.kill()
    raise AssertionError(f"no URL printed; stderr: {proc.stderr.read()}")


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

    from enclave import home, keys

    keys.save_identity(home.Home(tmp_path / "home"), rsa_keys["carol"], PASSWORD)
    proc = launch(tmp_path / "home", env_extra={"ENCLAVE_PASSWORD": PASSWORD})
    base, token = read_url(proc)
    assert get(f"{base}/api/state", token)[1]["state"] == "ready"
    code, out, err = stop(proc)
    assert code == 0, err
    out = "".join(proc.seen) + out
    assert "Listening on 127.0.0.1:" in out and PASSWORD not in out + err


def test_binding_beyond_loopback_warns(tmp_path):
    proc = launch(tmp_path / "home", "--web-host", "0.0.0.0")
    read_url(proc)
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
