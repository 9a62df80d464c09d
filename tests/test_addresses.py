"""Peer addresses: what is accepted, its canonical form, and one-line refusals."""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.fuzzing import examples

from enclave.errors import UserError
from enclave.node.addresses import Address, parse_address, parse_host, parse_port


@pytest.mark.parametrize(
    ("text", "host", "port", "canonical"),
    [
        ("192.168.1.100:8000", "192.168.1.100", 8000, "192.168.1.100:8000"),
        ("localhost:1", "localhost", 1, "localhost:1"),
        ("Alice.LAN:65535", "alice.lan", 65535, "alice.lan:65535"),
        ("alice.lan.:8000", "alice.lan", 8000, "alice.lan:8000"),
        ("my-host-2:8001", "my-host-2", 8001, "my-host-2:8001"),
        ("[::1]:8000", "::1", 8000, "[::1]:8000"),
        ("[FE80:0:0::1]:9000", "fe80::1", 9000, "[fe80::1]:9000"),
        ("[fe80::1%eth0]:8000", "fe80::1%eth0", 8000, "[fe80::1%eth0]:8000"),
        ("10.0.0.1:08000", "10.0.0.1", 8000, "10.0.0.1:8000"),
        ("x" * 63 + ".example:80", "x" * 63 + ".example", 80, "x" * 63 + ".example:80"),
    ],
)
def test_valid_addresses(text, host, port, canonical):
    address = parse_address(text)
    assert address == Address(host, port)
    assert str(address) == canonical
    assert parse_address(str(address)) == address


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("192.168.1.100", "port is missing"),
        ("192.168.1.100:", "port is missing"),
        ("192.168.1.100:0", "outside 1-65535"),
        ("192.168.1.100:65536", "outside 1-65535"),
        ("192.168.1.100:123456", "outside 1-65535"),
        ("192.168.1.100:http", "not a number"),
        ("192.168.1.100:-1", "not a number"),
        ("192.168.1.100:+80", "not a number"),
        ("192.168.1.100:٨٠٠٠", "not a number"),
        ("fe80::1:8000", "needs brackets"),
        ("::1", "needs brackets"),
        (":8000", "host is empty"),
        ("[]:8000", "not a valid IPv6"),
        ("[::1]", "port is missing"),
        ("[::1]8000", "port is missing"),
        ("[::1:8000", "no closing ]"),
        ("[not-v6]:8000", "not a valid IPv6"),
        ("[fe80::1%e th0]:8000", "spaces"),
        ("my host:8000", "spaces"),
        (" alice:8000", "spaces"),
        ("alice:8000\n", "spaces"),
        ("al_ice:8000", "not a valid host name"),
        ("-alice:8000", "not a valid host name"),
        ("alice-.lan:8000", "not a valid host name"),
        ("a..b:8000", "not a valid host name"),
        ("x" * 64 + ":8000", "not a valid host name"),
        (("a" * 60 + ".") * 5 + "b:80", "not a valid host name"),
        ("alicé:8000", "not a valid host name"),
        ("999.1.1.1:8000", "not a valid IPv4"),
        ("1.2.3:8000", "not a valid IPv4"),
        ("010.0.0.1:8000", "not a valid IPv4"),
        ("host.123:8000", "neither a host name nor an IPv4"),
        ("alice:80:80", "needs brackets"),
    ],
)
def test_invalid_addresses_say_what_is_expected(text, why):
    with pytest.raises(UserError) as caught:
        parse_address(text)
    message = str(caught.value)
    assert why in message
    assert "expected HOST:PORT" in message
    assert "\n" not in message


def test_ipv6_flag_and_hashable():
    assert parse_address("[::1]:1").is_ipv6
    assert not parse_address("1.2.3.4:1").is_ipv6
    assert len({parse_address("[::1]:8000"), parse_address("[0:0::1]:8000")}) == 1


@pytest.mark.parametrize(("text", "port"), [("1", 1), ("8000", 8000), ("65535", 65535)])
def test_parse_port(text, port):
    assert parse_port(text) == port


@pytest.mark.parametrize("text", ["0", "65536", "", "x", "-5", " 80", "1e3"])
def test_parse_port_refuses(text):
    with pytest.raises(UserError, match="expected a number from 1 to 65535"):
        parse_port(text)


@pytest.mark.parametrize(
    ("text", "host"), [("0.0.0.0", "0.0.0.0"), ("::", "::"), ("[::1]", "::1"), ("Box", "box")]
)
def test_parse_host(text, host):
    assert parse_host(text) == host


@settings(max_examples=examples(1000), deadline=None)
@given(st.ip_addresses(), st.integers(1, 65535))
def test_any_ip_and_port_round_trips(ip, port):
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    address = parse_address(f"{host}:{port}")
    assert ipaddress.ip_address(address.host) == ip
    assert address.port == port
    assert parse_address(str(address)) == address


@settings(max_examples=examples(1000), deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_an_address_or_one_user_error(text):
    try:
        address = parse_address(text)
    except UserError:
        return
    assert 1 <= address.port <= 65535
    assert parse_address(str(address)) == address
