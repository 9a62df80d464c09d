"""support/ports.py: the ports test nodes listen on are not ones the kernel may hand
to an outgoing connection in the meantime."""

import socket

from support import ports


def test_a_listen_port_is_below_the_ephemeral_range_and_free_to_bind():
    start = ports._ephemeral_start()
    picked = {ports.listen_port() for _ in range(20)}
    assert len(picked) > 1  # chosen at random, not the same one each time
    for port in picked:
        assert 1024 <= port < start
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_an_outgoing_connection_never_gets_such_a_port():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        clients = [socket.create_connection(server.getsockname()) for _ in range(50)]
        try:
            assert all(c.getsockname()[1] >= ports._ephemeral_start() for c in clients)
        finally:
            for c in clients:
                c.close()
