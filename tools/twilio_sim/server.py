"""The simulator's HTTP listener on loopback (`LoopbackServer`): every request is answered by the
`handle` it is given, and a refusal (`refuse_connections`) closes the listening socket for a
while, so that a connect in between is refused for real."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tools.twilio_sim.wire import Answer

# (method, path, query, form, headers) → the answer
Handle = Callable[[str, str, dict[str, list[str]], dict[str, list[str]], Mapping[str, str]], Answer]


class LoopbackServer:
    def __init__(self, handle: Handle) -> None:
        self.handle = handle
        self._server: ThreadingHTTPServer | None = None
        self._port = 0
        self._stopped = False
        self._serving = threading.Lock()  # held while the listening socket is being replaced

    @property
    def url(self) -> str:
        assert self._port, "start() first"
        return f"http://127.0.0.1:{self._port}"

    def start(self, port: int = 0) -> None:
        self._listen(port)

    def _listen(self, port: int) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        server.daemon_threads = True
        self._server = server
        self._port = server.server_address[1]
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        with self._serving:
            server, self._server, self._stopped = self._server, None, True
        if server:
            server.shutdown()
            server.server_close()

    def refuse_connections(self, seconds: float) -> None:
        """Close the listening socket now and open it again on the same port `seconds` later:
        a connect in between is refused by the kernel (ECONNREFUSED), as with a network blip."""
        with self._serving:
            server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()

        def reopen() -> None:
            for _ in range(100):  # the port may take a moment to be free again
                with self._serving:
                    if self._server is not None or self._stopped:
                        return
                    try:
                        self._listen(self._port)
                    except OSError:
                        pass
                    else:
                        return
                time.sleep(0.05)

        timer = threading.Timer(seconds, reopen)
        timer.daemon = True
        timer.start()


def _handler(listener: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall
        # HTTP/1.0: one connection per request, so a refusal meets every client's next request.

        def _serve(self) -> None:
            parsed = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            answer = listener.handle(
                self.command,
                parsed.path,
                parse_qs(parsed.query),
                form,
                dict(self.headers.items()),
            )
            if answer.refuse_for:  # closed before the answer leaves: the next connect fails
                listener.refuse_connections(answer.refuse_for)
            if answer.delay:
                time.sleep(answer.delay)
            payload = json.dumps(answer.body).encode()
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
