"""A Twilio Conversations simulator on loopback: the REST subset Redeliver uses, over real HTTP.

The retry worker's real twilio-python client talks to it (set TWILIO_CONVERSATIONS_URL to `url`),
so tests exercise Twilio's wire format (form-encoded creates, JSON answers, paging, error bodies)
and not a mock of our own wrapper. Endpoints:

    GET  /v1/Conversations/{CH}/Messages/{IM}     fetch a message
    POST /v1/Conversations/{CH}/Messages          create a message (Author, Body, Attributes,
                                                  MediaSid, ContentSid, ContentVariables)
    GET  /v1/Conversations/{CH}/Messages          list (Order=asc|desc, PageSize)
    GET  /v1/Conversations/{CH}/Participants      list participants
    GET  /v1/Services/{IS}/Configuration/Webhooks fetch a service's webhook configuration
    POST /v1/Services/{IS}/Configuration/Webhooks update it (Filters replaced whole)

Faults for the next requests are scripted with `fail_next(...)`: an HTTP error answer (429, 500,
a 4xx with a Twilio error code), or `timeout_after_create`, which stores the message and then
answers too late, exactly the ambiguous case a client cannot tell from a lost request.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tools.samples import sid

_MESSAGE = re.compile(r"^/v1/Conversations/(CH\w{32})/Messages/(IM\w{32})$")
_MESSAGES = re.compile(r"^/v1/Conversations/(CH\w{32})/Messages$")
_PARTICIPANTS = re.compile(r"^/v1/Conversations/(CH\w{32})/Participants$")
_SERVICE_WEBHOOKS = re.compile(r"^/v1/Services/(IS\w{32})/Configuration/Webhooks$")


@dataclass
class Fault:
    status: int = 500
    code: int = 20500
    timeout_after_create: bool = False
    delay: float = 0.0


@dataclass
class Conversation:
    sid: str
    participants: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)


class TwilioSimulator:
    def __init__(self, account_sid: str = sid("AC", "account"), seed: int = 0) -> None:
        self.account_sid = account_sid
        self.chat_service_sid = sid("IS", "service")
        self.conversations: dict[str, Conversation] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request served
        self.created: list[dict[str, Any]] = []  # every message created through the API
        self._faults: list[tuple[str, Fault]] = []
        self._ids = itertools.count(1)
        self._seed = seed
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.service_webhooks: dict[str, dict[str, Any]] = {}
        self.listeners: list[Callable[[dict[str, Any], str, int], None]] = []
        self._new: list[tuple[dict[str, Any], str, int]] = []

    # -- state -----------------------------------------------------------------------------------

    def add_conversation(
        self,
        recipients: int = 1,
        chat_participants: int = 0,
        name: object = None,
        channel: str = "sms",
    ) -> str:
        conversation = sid("CH", name if name is not None else f"sim-{next(self._ids)}")
        participants = [
            {
                "sid": sid("MB", f"{conversation}-{n}"),
                "identity": None,
                "messaging_binding": {
                    "type": channel,
                    "address": f"+1555000{n:04d}",
                    "proxy_address": "+15550009999",
                },
            }
            for n in range(recipients)
        ] + [
            {
                "sid": sid("MB", f"{conversation}-chat-{n}"),
                "identity": f"agent-{n}",
                "messaging_binding": None,
            }
            for n in range(chat_participants)
        ]
        with self._lock:
            self.conversations[conversation] = Conversation(conversation, participants)
        return conversation

    def add_message(
        self,
        conversation: str,
        body: str = "Your code is 123456",
        *,
        author: str = "system",
        attributes: dict[str, Any] | None = None,
        media: list[dict[str, Any]] | None = None,
        content_sid: str | None = None,
        created: datetime | None = None,
    ) -> str:
        form = {
            "Author": author,
            "Body": body,
            "Attributes": json.dumps(attributes or {}),
            "ContentSid": content_sid,
        }
        with self._lock:
            stored = str(self._store(conversation, form, media, created)["sid"])
        self._notify()
        return stored

    def messages(self, conversation: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.conversations[conversation].messages)

    def fail_next(self, method: str, *faults: Fault) -> None:
        """The next len(faults) requests with this method answer with these faults, in order."""
        with self._lock:
            self._faults.extend((method, fault) for fault in faults)

    def _store(
        self,
        conversation: str,
        form: dict[str, Any],
        media: list[dict[str, Any]] | None,
        created: datetime | None,
    ) -> dict[str, Any]:
        chat = self.conversations[conversation]
        recipients = sum(1 for p in chat.participants if p["messaging_binding"])
        moment = (created or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
        message = {
            "account_sid": self.account_sid,
            "chat_service_sid": self.chat_service_sid,
            "conversation_sid": conversation,
            "sid": sid("IM", f"{self._seed}-{conversation}-{len(chat.messages)}"),
            "index": len(chat.messages),
            "author": form.get("Author") or "system",
            "body": form.get("Body"),
            "media": media,
            "attributes": form.get("Attributes") or "{}",
            "participant_sid": None,
            "content_sid": form.get("ContentSid") or None,
            "date_created": moment,
            "date_updated": moment,
            "url": f"/v1/Conversations/{conversation}/Messages",
            "delivery": {
                "total": recipients,
                "sent": "all",
                "delivered": "none",
                "read": "none",
                "failed": "none",
                "undelivered": "none",
            }
            if recipients
            else None,
            "links": {},
        }
        chat.messages.append(message)
        bindings = [p["messaging_binding"] for p in chat.participants if p["messaging_binding"]]
        if bindings:  # what Twilio will report receipts for: one per non-chat participant
            self._new.append((message, bindings[0]["type"], len(bindings)))
        return message

    def _notify(self) -> None:
        with self._lock:
            new, self._new = self._new, []
        for message, channel, recipients in new:
            for listener in self.listeners:
                listener(message, channel, recipients)

    # -- server ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, port: int = 0) -> TwilioSimulator:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], form: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any], float]:
        """(status, JSON body, seconds to wait before answering) for one request."""
        try:
            return self._answer(method, path, query, form)
        finally:
            self._notify()

    def _answer(  # noqa: PLR0911 - one return per route
        self, method: str, path: str, query: dict[str, list[str]], form: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any], float]:
        with self._lock:
            self.requests.append((method, path))
            fault = next((f for m, f in self._faults if m == method), None)
            if fault is not None:
                self._faults.remove((method, fault))
            if fault and not fault.timeout_after_create:
                return fault.status, _error(fault.status, fault.code), fault.delay
            if match := _MESSAGE.match(path):
                return self._fetch(*match.groups())
            if match := _MESSAGES.match(path):
                if method == "POST":
                    status, body, _ = self._create(match.group(1), form)
                    return status, body, fault.delay if fault else 0.0
                return self._list(match.group(1), query)
            if match := _SERVICE_WEBHOOKS.match(path):
                return self._service_webhooks(match.group(1), method, form)
            if (match := _PARTICIPANTS.match(path)) and match.group(1) in self.conversations:
                items = self.conversations[match.group(1)].participants
                return 200, _page("participants", items, path, len(items)), 0.0
            return 404, _error(404, 20404), 0.0

    def _service_webhooks(
        self, service: str, method: str, form: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any], float]:
        config = self.service_webhooks.setdefault(
            service,
            {
                "account_sid": self.account_sid,
                "chat_service_sid": service,
                "pre_webhook_url": None,
                "post_webhook_url": None,
                "filters": [],
                "method": "POST",
                "url": f"/v1/Services/{service}/Configuration/Webhooks",
            },
        )
        if method == "POST":
            if "Filters" in form:
                config["filters"] = list(form["Filters"])
            for field, key in (
                ("PostWebhookUrl", "post_webhook_url"),
                ("PreWebhookUrl", "pre_webhook_url"),
                ("Method", "method"),
            ):
                if field in form:
                    config[key] = form[field][0]
        return 200, dict(config), 0.0

    def _fetch(self, conversation: str, message: str) -> tuple[int, dict[str, Any], float]:
        chat = self.conversations.get(conversation)
        found = [m for m in chat.messages if m["sid"] == message] if chat else []
        return (200, found[0], 0.0) if found else (404, _error(404, 20404), 0.0)

    def _create(
        self, conversation: str, form: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any], float]:
        if conversation not in self.conversations:
            return 404, _error(404, 20404), 0.0
        values = {k: v[0] for k, v in form.items()}
        media_sid = values.pop("MediaSid", None)
        media = (
            [{"sid": media_sid, "content_type": "image/jpeg", "filename": "f.jpg", "size": 1}]
            if media_sid
            else None
        )
        message = self._store(conversation, values, media, None)
        self.created.append({**message, "content_variables": values.get("ContentVariables")})
        return 201, message, 0.0

    def _list(
        self, conversation: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any], float]:
        if conversation not in self.conversations:
            return 404, _error(404, 20404), 0.0
        items = list(self.conversations[conversation].messages)
        if query.get("Order", ["asc"])[0] == "desc":
            items.reverse()
        size = int(query.get("PageSize", ["50"])[0])
        path = f"/v1/Conversations/{conversation}/Messages"
        return 200, _page("messages", items[:size], path, size), 0.0


def _page(key: str, items: list[dict[str, Any]], path: str, size: int) -> dict[str, Any]:
    return {
        key: items,
        "meta": {
            "page": 0,
            "page_size": size,
            "first_page_url": path,
            "previous_page_url": None,
            "url": path,
            "next_page_url": None,
            "key": key,
        },
    }


def _error(status: int, code: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": f"simulated error {code}",
        "status": status,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
    }


def _handler(simulator: TwilioSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

        def _serve(self) -> None:
            parsed = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            status, body, delay = simulator.handle(
                self.command, parsed.path, parse_qs(parsed.query), form
            )
            if delay:
                time.sleep(delay)
            payload = json.dumps(body).encode()
            try:
                self.send_response(status)
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


@contextmanager
def running(seed: int = 0) -> Iterator[TwilioSimulator]:
    simulator = TwilioSimulator(seed=seed).start()
    try:
        yield simulator
    finally:
        simulator.stop()
