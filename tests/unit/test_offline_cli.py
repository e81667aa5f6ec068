"""tools.offline's command: what it checks before a run starts."""

from __future__ import annotations

import socket

from tools.offline.cli import port_free


def test_a_port_left_in_time_wait_by_the_last_run_is_free_and_a_listening_one_is_not() -> None:
    """`make chaos` right after `make serve` used to stop with "port 3000 is in use" while only
    TIME-WAIT connections held it: the servers bind with SO_REUSEADDR, and so must the probe."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_free(port)  # a server is listening there
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server side closes first: its end waits in TIME-WAIT
        client.recv(1)
        client.close()
    assert port_free(port)
