"""The command tests run against the template deployed into moto and the Twilio simulator: the
same fixtures as the integration tests, imported rather than copied; and the stack's webhook route
on loopback (`webhook`), for the commands that post to it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

from tests.integration.conftest import aws, sim, stack, system
from tests.integration.retry_system import RetrySystem
from tests.lambdas import invoke
from tools.apigw import ROUTE_PATH, request_event

__all__ = ["aws", "sim", "stack", "system", "webhook"]


@pytest.fixture
def webhook(system: RetrySystem) -> Iterator[str]:
    """The webhook route on 127.0.0.1, as the offline stack's local API serves it: the
    request made the payload-2.0 event API Gateway makes, for the real ingest handler."""

    class Route(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            parsed = urlparse(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            event = request_event(
                "POST",
                parsed.path,
                parsed.query,
                dict(self.headers.items()),
                body,
                domain=self.headers.get("Host", "127.0.0.1"),
            )
            answer = invoke(system.ingest, event)
            payload = str(answer.get("body") or "").encode()
            self.send_response(int(answer["statusCode"]))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Route)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}{ROUTE_PATH}"
    server.shutdown()
    server.server_close()
