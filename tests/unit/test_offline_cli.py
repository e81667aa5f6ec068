"""tools.offline's command: what it checks before a run, and what a run says while it runs."""

from __future__ import annotations

import socket

from tools.offline.cli import port_free
from tools.offline.scenario import held_by, sending_line, waiting_for


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


def test_a_long_run_says_how_far_it_is_and_what_it_waits_for() -> None:
    assert sending_line(250, 1000, 5.0, 50.0) == "  5.0 s  messages 250 of 1000, about 15 s to go"
    depth = {
        "ApproximateNumberOfMessages": 0,
        "ApproximateNumberOfMessagesNotVisible": 2,
        "ApproximateNumberOfMessagesDelayed": 12,
    }
    assert waiting_for(depth, 1, []) == (
        "1 webhook(s) awaiting ingest, 2 job(s) in flight, "
        "12 job(s) delayed (a policy delay or a wait)"
    )
    quiet = dict.fromkeys(depth, 0)
    assert waiting_for(quiet, 0, held_by(3, 0)) == (
        "3 failure(s) for the sweeper (its grace period)"
    )
    assert waiting_for(quiet, 0, held_by(0, 4)) == "4 receipt(s) at sent for the reconciler"
    assert waiting_for(quiet, 0, []) == "nothing (settling)"
