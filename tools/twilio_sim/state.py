"""A Twilio Conversations simulator on loopback: the REST subset Redeliver uses, over real HTTP.

The retry worker's real twilio-python client talks to it (set TWILIO_CONVERSATIONS_URL to `url`),
so tests exercise Twilio's wire format (form-encoded creates, JSON answers, paging, error bodies)
and not a mock of our own wrapper. It answers as Twilio's OpenAPI description says
(`../shared/oai/twilio_conversations_v1.json`; checked by tests/integration/test_twilio_sim.py):
every schema property present (null when unset, its default when the schema allows no null),
none outside it, dates as `YYYY-MM-DDTHH:MM:SSZ` (the only form twilio-python parses), absolute
`url`s and `links` under https://conversations.twilio.com, real paging (`PageSize`,
`next_page_url` with a `PageToken`). The client is pointed here by rewriting that host (see
ConversationsGateway), so the URLs Twilio would send back are followed as they would be.

Endpoints, each in the service-scoped form and the short form. The short form reaches only the
account's default Conversation Service (`chat_service_sid`): a conversation of another service is
404 20404 there, as on Twilio.

    GET  /v1/[Services/{IS}/]Conversations/{CH}/Messages/{IM}           fetch a message
    POST /v1/[Services/{IS}/]Conversations/{CH}/Messages                 create (Author, Body,
         Attributes, MediaSid, ContentSid, ContentVariables; header X-Twilio-Webhook-Enabled)
    GET  /v1/[Services/{IS}/]Conversations/{CH}/Messages                 list (Order, PageSize)
    GET  /v1/[Services/{IS}/]Conversations/{CH}/Participants             list participants
    GET  /v1/[Services/{IS}/]Conversations/{CH}/Participants/{MB}        fetch a participant
    POST /v1/[Services/{IS}/]Conversations/{CH}/Participants             add one (Identity, or
         MessagingBinding.Address + .ProxyAddress: 409 50416 when that pair already sits in
         another conversation of the service)
    POST /v1/[Services/{IS}/]Conversations                               create (UniqueName,
         FriendlyName, Attributes: 409 50353 when the UniqueName is taken in the service)
    GET  /v1/[Services/{IS}/]Conversations/{CH or UniqueName}            fetch a conversation
    GET  /v1/[Services/{IS}/]ParticipantConversations?Address=|Identity= where one takes part
    GET  /v1/[Services/{IS}/]Conversations/{CH}/Messages/{IM}/Receipts   list delivery receipts
    GET  /v1/Services/{IS}/Configuration/Webhooks                        a service's webhooks
    POST /v1/Services/{IS}/Configuration/Webhooks                        update (Filters whole)

Faults. `fail_next(method, *faults)` scripts the next requests of a method; `set_fault_rates`
draws them at random for message creates (the chaos run). What each one leaves behind is what
Twilio would: a 429 or a 5xx *before* the store stores nothing, a 5xx *after* the store or a
read timeout (the answer withheld past the client's timeout) stores the message, and a refused
connection is a real refused TCP connect (the listening socket is closed for a moment and opened
again on the same port), so the client's request never leaves.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from tools.samples import sid

TWILIO_URL = "https://conversations.twilio.com"  # what Twilio's absolute URLs start with
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_SCOPE = r"^/v1/(?:Services/(?P<service>IS\w{32})/)?Conversations/(?P<conversation>CH\w{32})"
_MESSAGE = re.compile(_SCOPE + r"/Messages/(?P<message>IM\w{32})$")
_MESSAGES = re.compile(_SCOPE + r"/Messages$")
_RECEIPTS = re.compile(_SCOPE + r"/Messages/(?P<message>IM\w{32})/Receipts$")
_PARTICIPANTS = re.compile(_SCOPE + r"/Participants$")
_PARTICIPANT = re.compile(_SCOPE + r"/Participants/(?P<participant>MB\w{32})$")
_CONVERSATIONS = re.compile(r"^/v1/(?:Services/(?P<service>IS\w{32})/)?Conversations$")
_CONVERSATION = re.compile(
    r"^/v1/(?:Services/(?P<service>IS\w{32})/)?Conversations/(?P<conversation>[^/]+)$"
)
_PARTICIPANT_CONVERSATIONS = re.compile(
    r"^/v1/(?:Services/(?P<service>IS\w{32})/)?ParticipantConversations$"
)
UNIQUE_NAME_TAKEN = 50353
BINDING_TAKEN = 50416
_SERVICE_WEBHOOKS = re.compile(r"^/v1/Services/(IS\w{32})/Configuration/Webhooks$")
_TOKEN = re.compile(r"^PT(\d+)$")


@dataclass(frozen=True)
class Fault:
    """One scripted answer in place of the normal one (see the module docstring).

    The named constructors say which of Twilio's failures it is."""

    status: int = 500
    code: int = 20500
    stored: bool = False  # the create is stored before this answer (a 5xx after the store)
    timeout_after_create: bool = False  # stored, and the normal answer sent `delay` s late
    delay: float = 0.0  # seconds before answering
    refused: bool = False  # no answer: connections are refused for `delay` seconds

    @classmethod
    def throttled(cls) -> Fault:
        return cls(status=429, code=20429)

    @classmethod
    def error_before(cls, status: int = 503) -> Fault:
        return cls(status=status, code=_ERROR_CODES.get(status, 20500))

    @classmethod
    def error_after(cls, status: int = 502) -> Fault:
        return cls(status=status, code=_ERROR_CODES.get(status, 20500), stored=True)

    @classmethod
    def timeout_after(cls, delay: float) -> Fault:
        return cls(timeout_after_create=True, delay=delay)

    @classmethod
    def connection_refused(cls, seconds: float = 0.5) -> Fault:
        """The port closes once the request before it is answered: the scripted method's next
        request (in the worker: the create after its fetch) finds nothing listening."""
        return cls(refused=True, delay=seconds)


_ERROR_CODES = {500: 20500, 502: 20500, 503: 20503, 504: 20504}


@dataclass(frozen=True)
class FaultRates:
    """Shares of message creates that meet each fault (the chaos run)."""

    throttled: float = 0.0  # 429 / 20429, nothing stored
    error_before: float = 0.0  # 503 before the store: nothing stored
    error_after: float = 0.0  # 502 after the store: stored, client sees a 5xx
    timeout_after: float = 0.0  # stored, answer withheld past the client's timeout
    refused: float = 0.0  # connection refused: nothing stored


@dataclass
class Conversation:
    sid: str
    service: str
    participants: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    unique_name: str | None = None
    friendly_name: str | None = None
    attributes: str = "{}"
    created: str = ""


@dataclass
class _Answer:
    status: int
    body: dict[str, Any]
    delay: float = 0.0
    refuse_for: float = 0.0  # after this answer, refuse connections for so many seconds


class TwilioSimulator:
    def __init__(self, account_sid: str = sid("AC", "account"), seed: int = 0) -> None:
        self.account_sid = account_sid
        self.chat_service_sid = sid("IS", "service")  # the account's default service
        self.services: set[str] = {self.chat_service_sid}
        self.conversations: dict[str, Conversation] = {}
        self.receipts: dict[str, list[dict[str, Any]]] = {}  # message SID -> its receipts
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request served
        self.created: list[dict[str, Any]] = []  # every message created through the API
        self.created_at: dict[str, float] = {}  # its SID -> time.monotonic() when it was stored
        self.fault_counts: Counter[str] = Counter()  # faults injected, by FaultRates field
        self._faults: list[tuple[str, Fault]] = []
        self._rates = FaultRates()
        self._rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
        self._timeout = 10.0
        self._ids = itertools.count(1)
        self._seed = seed
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._port = 0
        self._stopped = False
        self._serving = threading.Lock()  # held while the listening socket is being replaced
        self.service_webhooks: dict[str, dict[str, Any]] = {}
        self.listeners: list[Callable[[dict[str, Any], str, int], None]] = []
        self._new: list[tuple[dict[str, Any], str, int]] = []

    # -- state -----------------------------------------------------------------------------------

    def add_service(self, name: object) -> str:
        """A Conversation Service other than the default one: reached only by its own paths."""
        service = sid("IS", name)
        with self._lock:
            self.services.add(service)
        return service

    def add_conversation(
        self,
        recipients: int = 1,
        chat_participants: int = 0,
        name: object = None,
        channel: str = "sms",
        service: str | None = None,
        *,
        address: str | None = None,
    ) -> str:
        """A conversation with `recipients` participants on `channel` (`sms`, `whatsapp`: their
        addresses then read `whatsapp:+1...`, as Twilio's do), the first at `address` if given,
        and `chat_participants` chat identities."""
        conversation = sid("CH", name if name is not None else f"sim-{next(self._ids)}")
        service = service or self.chat_service_sid
        moment = _date(datetime.now(UTC))
        prefix = "whatsapp:" if channel == "whatsapp" else ""
        participants = [
            {
                "sid": sid("MB", f"{conversation}-{n}"),
                "identity": None,
                "messaging_binding": {
                    "type": channel,
                    "address": f"{prefix}{address}"
                    if address and n == 0
                    else f"{prefix}+1555000{n:04d}",
                    "proxy_address": f"{prefix}+15550009999",
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
        for participant in participants:
            participant.update(
                account_sid=self.account_sid,
                chat_service_sid=service,
                conversation_sid=conversation,
                attributes="{}",
                role_sid=None,
                date_created=moment,
                date_updated=moment,
                url=f"{TWILIO_URL}{_base(service, conversation)}/Participants/{participant['sid']}",
                last_read_message_index=None,
                last_read_timestamp=None,
            )
        with self._lock:
            if service not in self.services:
                raise KeyError(f"no service {service}: add_service() first")
            self.conversations[conversation] = Conversation(
                conversation, service, participants, created=moment
            )
        return conversation

    def add_participant(self, conversation: str, address: str) -> str:
        """Someone joins a conversation on its first participant's channel (its proxy too), as
        `POST .../Participants` with a MessagingBinding would add them."""
        with self._lock:
            chat = self.conversations[conversation]
            first = chat.participants[0]
            binding = first["messaging_binding"]
            prefix = "whatsapp:" if binding and binding.get("type") == "whatsapp" else ""
            participant = {
                **first,
                "sid": sid("MB", f"{conversation}-joined-{len(chat.participants)}"),
                "identity": None,
                "messaging_binding": {**(binding or {}), "address": f"{prefix}{address}"},
            }
            chat.participants.append(participant)
        return str(participant["sid"])

    def participant_of(self, conversation: str, n: int = 0) -> str:
        """The SID of a conversation's n-th participant (a receipt's ParticipantSid)."""
        return str(self.conversations[conversation].participants[n]["sid"])

    def service_of(self, conversation: str) -> str:
        return self.conversations[conversation].service

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

    def set_receipt(
        self,
        message: str,
        status: str,
        error_code: int | None = None,
        *,
        receipt: int | str = 0,
        updated: datetime | None = None,
    ) -> dict[str, Any]:
        """Move one of a message's receipts (by position or DY SID) on, as Twilio's Receipts
        resource shows it: only the latest status is kept."""
        with self._lock:
            receipts = self.receipts[message]
            found = (
                receipts[receipt]
                if isinstance(receipt, int)
                else next(r for r in receipts if r["sid"] == receipt)
            )
            found.update(
                status=status,
                error_code=error_code or 0,
                date_updated=_date(updated or datetime.now(UTC)),
            )
            return dict(found)

    def fail_next(self, method: str, *faults: Fault) -> None:
        """The next len(faults) requests with this method answer with these faults, in order."""
        with self._lock:
            self._faults.extend((method, fault) for fault in faults)

    def set_fault_rates(self, rates: FaultRates, seed: int, timeout_seconds: float) -> None:
        """Draw faults at random for message creates from now on (`refused` is drawn when a
        message is fetched: the create that follows finds the port closed). `timeout_seconds` is
        the client's read timeout: a withheld answer comes a second after it."""
        with self._lock:
            self._rates = rates
            self._rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
            self._timeout = timeout_seconds

    def _store(
        self,
        conversation: str,
        form: Mapping[str, Any],
        media: list[dict[str, Any]] | None,
        created: datetime | None,
    ) -> dict[str, Any]:
        chat = self.conversations[conversation]
        author = form.get("Author") or "system"
        # Twilio delivers a message to every non-chat participant but its author (an SMS
        # participant's own text is not sent back to it): receipts and delivery.total follow.
        recipients = [
            p
            for p in chat.participants
            if p["messaging_binding"] and p["messaging_binding"].get("address") != author
        ]
        bindings = [p["messaging_binding"] for p in recipients]
        moment = _date(created or datetime.now(UTC))
        message_sid = sid("IM", f"{self._seed}-{conversation}-{len(chat.messages)}")
        url = f"{TWILIO_URL}{_base(chat.service, conversation)}/Messages/{message_sid}"
        message = {
            "account_sid": self.account_sid,
            "chat_service_sid": chat.service,
            "conversation_sid": conversation,
            "sid": message_sid,
            "index": len(chat.messages),
            "author": author,
            "body": form.get("Body"),
            "media": media,
            "attributes": form.get("Attributes") or "{}",
            "participant_sid": None,
            "date_created": moment,
            "date_updated": moment,
            "delivery": {
                "total": len(bindings),
                "sent": "all",
                "delivered": "none",
                "read": "none",
                "failed": "none",
                "undelivered": "none",
            }
            if bindings
            else None,
            "url": url,
            "links": {
                "delivery_receipts": f"{url}/Receipts",
                "channel_metadata": f"{url}/ChannelMetadata",
            },
            "content_sid": form.get("ContentSid") or None,
        }
        chat.messages.append(message)
        self.receipts[message_sid] = [
            {
                "account_sid": self.account_sid,
                "chat_service_sid": chat.service,
                "conversation_sid": conversation,
                "message_sid": message_sid,
                "sid": sid("DY", f"{message_sid}-{n}"),
                "channel_message_sid": sid("SM", f"{message_sid}-{n}"),
                "participant_sid": participant["sid"],
                "status": "sent",
                "error_code": 0,  # the schema allows no null: its default
                "date_created": moment,
                "date_updated": moment,
                "url": f"{url}/Receipts/{sid('DY', f'{message_sid}-{n}')}",
            }
            for n, participant in enumerate(recipients)
        ]
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
        assert self._port, "start() first"
        return f"http://127.0.0.1:{self._port}"

    def start(self, port: int = 0) -> TwilioSimulator:
        self._listen(port)
        return self

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

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        form: dict[str, list[str]],
        headers: Mapping[str, str],
    ) -> _Answer:
        """The answer to one request (its status, JSON body, delay, and any refusal after it)."""
        try:
            return self._answer(method, path, query, form, headers)
        finally:
            self._notify()

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        form: dict[str, list[str]],
        headers: Mapping[str, str],
    ) -> _Answer:
        with self._lock:
            self.requests.append((method, path))
            refuse_for = self._take_refusal()
            fault = next((f for m, f in self._faults if m == method and not f.refused), None)
            if fault is not None:
                self._faults.remove((method, fault))
            creating = method == "POST" and _MESSAGES.match(path) is not None
            if fault and not creating and not fault.timeout_after_create:
                # on anything but a create, a fault is its error: there is nothing to store
                return _Answer(
                    fault.status, _error(fault.status, fault.code), fault.delay, refuse_for
                )
            answer = self._route(method, path, query, form, headers=headers, fault=fault)
            answer.refuse_for = refuse_for or answer.refuse_for
            if fault and not creating:
                answer.delay = fault.delay
            return answer

    def _route(  # noqa: PLR0911 - one return per route
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        form: dict[str, list[str]],
        *,
        headers: Mapping[str, str],
        fault: Fault | None,
    ) -> _Answer:
        if match := _MESSAGE.match(path):
            answer = self._fetch(match["service"], match["conversation"], match["message"])
            answer.refuse_for = self._draw_refusal()
            return answer
        if match := _MESSAGES.match(path):
            service, conversation = match["service"], match["conversation"]
            if method == "POST":
                return self._create(service, conversation, form, headers, fault)
            return self._list_messages(service, conversation, query, path)
        if match := _RECEIPTS.match(path):
            service, conversation = match["service"], match["conversation"]
            return self._list_receipts(service, conversation, match["message"], query, path)
        if match := _PARTICIPANTS.match(path):
            service, conversation = match["service"], match["conversation"]
            if method == "POST":
                return self._add_participant(service, conversation, form)
            return self._list_participants(service, conversation, query, path)
        if match := _PARTICIPANT.match(path):
            return self._fetch_participant(
                match["service"], match["conversation"], match["participant"]
            )
        if (match := _CONVERSATIONS.match(path)) and method == "POST":
            return self._create_conversation(match["service"], form)
        if (match := _CONVERSATION.match(path)) and method == "GET":
            return self._fetch_conversation(match["service"], match["conversation"])
        if match := _PARTICIPANT_CONVERSATIONS.match(path):
            return self._participant_conversations(match["service"], query, path)
        if match := _SERVICE_WEBHOOKS.match(path):
            return self._service_webhooks(match.group(1), method, form)
        return _not_found()

    def _take_refusal(self) -> float:
        """A scripted refusal heading any method's queue starts once this request is answered
        (with the worker's fetch-then-create, the create is the one refused)."""
        for method in {m for m, _ in self._faults}:
            head = next(f for m, f in self._faults if m == method)
            if head.refused:
                self._faults.remove((method, head))
                return head.delay
        return 0.0

    def _draw_refusal(self) -> float:
        if self._rates.refused and self._rng.random() < self._rates.refused:
            self.fault_counts["refused"] += 1
            return max(0.5, self._timeout / 4)
        return 0.0

    def _conversation(self, service: str | None, conversation: str) -> Conversation | None:
        """The short path (`service` None) reaches only the default service's conversations."""
        chat = self.conversations.get(conversation)
        if chat is None or chat.service != (service or self.chat_service_sid):
            return None
        return chat

    def _service_webhooks(self, service: str, method: str, form: dict[str, list[str]]) -> _Answer:
        if service not in self.services:
            return _not_found()
        config = self.service_webhooks.setdefault(
            service,
            {
                "account_sid": self.account_sid,
                "chat_service_sid": service,
                "pre_webhook_url": None,
                "post_webhook_url": None,
                "filters": [],
                "method": "POST",
            },
        )
        if method == "POST":
            if "Filters" in form:
                config["filters"] = list(form["Filters"])
            for name, key in (
                ("PostWebhookUrl", "post_webhook_url"),
                ("PreWebhookUrl", "pre_webhook_url"),
                ("Method", "method"),
            ):
                if name in form:
                    config[key] = form[name][0]
        url = f"{TWILIO_URL}/v1/Services/{service}/Configuration/Webhooks"
        return _Answer(200, {**config, "url": url})

    def _fetch(self, service: str | None, conversation: str, message: str) -> _Answer:
        chat = self._conversation(service, conversation)
        found = [m for m in chat.messages if m["sid"] == message] if chat else []
        return _Answer(200, _scoped(found[0], service)) if found else _not_found()

    def _create(
        self,
        service: str | None,
        conversation: str,
        form: dict[str, list[str]],
        headers: Mapping[str, str],
        fault: Fault | None,
    ) -> _Answer:
        chat = self._conversation(service, conversation)
        if chat is None:
            return _not_found()
        fault = fault or self._draw_create_fault()
        if fault and not (fault.stored or fault.timeout_after_create):
            return _Answer(fault.status, _error(fault.status, fault.code), fault.delay)
        values = {k: v[0] for k, v in form.items()}
        media_sid = values.pop("MediaSid", None)
        media = (
            [{"sid": media_sid, "content_type": "image/jpeg", "filename": "f.jpg", "size": 1}]
            if media_sid
            else None
        )
        message = self._store(conversation, values, media, None)
        self.created_at[str(message["sid"])] = time.monotonic()
        self.created.append(
            {
                **message,
                "content_variables": values.get("ContentVariables"),
                "x_twilio_webhook_enabled": _header(headers, "X-Twilio-Webhook-Enabled"),
            }
        )
        if fault and fault.stored:
            return _Answer(fault.status, _error(fault.status, fault.code), fault.delay)
        return _Answer(201, _scoped(message, service), fault.delay if fault else 0.0)

    def _draw_create_fault(self) -> Fault | None:
        rates = self._rates
        roll = self._rng.random()
        for name, share, fault in (
            ("throttled", rates.throttled, Fault.throttled()),
            ("error_before", rates.error_before, Fault.error_before(503)),
            ("error_after", rates.error_after, Fault.error_after(502)),
            ("timeout_after", rates.timeout_after, Fault.timeout_after(self._timeout + 1.0)),
        ):
            if roll < share:
                self.fault_counts[name] += 1
                return fault
            roll -= share
        return None

    def _list_messages(
        self, service: str | None, conversation: str, query: dict[str, list[str]], path: str
    ) -> _Answer:
        chat = self._conversation(service, conversation)
        if chat is None:
            return _not_found()
        items = [(m["index"], _scoped(m, service)) for m in chat.messages]
        return _page("messages", items, path, query)

    def _list_receipts(
        self,
        service: str | None,
        conversation: str,
        message: str,
        query: dict[str, list[str]],
        path: str,
    ) -> _Answer:
        chat = self._conversation(service, conversation)
        if chat is None or not any(m["sid"] == message for m in chat.messages):
            return _not_found()
        receipts = self.receipts.get(message, [])
        items = [(n, _scoped(r, service)) for n, r in enumerate(receipts)]
        return _page("delivery_receipts", items, path, query, most=50)

    def _list_participants(
        self, service: str | None, conversation: str, query: dict[str, list[str]], path: str
    ) -> _Answer:
        chat = self._conversation(service, conversation)
        if chat is None:
            return _not_found()
        items = [(n, _scoped(p, service)) for n, p in enumerate(chat.participants)]
        return _page("participants", items, path, query)

    def _fetch_participant(
        self, service: str | None, conversation: str, participant: str
    ) -> _Answer:
        chat = self._conversation(service, conversation)
        found = [p for p in chat.participants if p["sid"] == participant] if chat else []
        return _Answer(200, _scoped(found[0], service)) if found else _not_found()

    def _add_participant(
        self, service: str | None, conversation: str, form: dict[str, list[str]]
    ) -> _Answer:
        chat = self._conversation(service, conversation)
        if chat is None:
            return _not_found()
        values = {k: v[0] for k, v in form.items()}
        address = values.get("MessagingBinding.Address")
        proxy = values.get("MessagingBinding.ProxyAddress")
        identity = values.get("Identity")
        if bool(address) == bool(identity) or (address and not proxy):
            return _Answer(400, _error(400, 50402))  # "Invalid participant binding" family
        binding = None
        if address:
            for other in self.conversations.values():
                if other.service != chat.service:
                    continue
                for p in other.participants:
                    taken = p["messaging_binding"] or {}
                    if (taken.get("address"), taken.get("proxy_address")) == (address, proxy):
                        return _Answer(409, _error(409, BINDING_TAKEN))
            kind = "whatsapp" if address.startswith("whatsapp:") else "sms"
            binding = {"type": kind, "address": address, "proxy_address": proxy}
        moment = _date(datetime.now(UTC))
        participant_sid = sid("MB", f"{conversation}-added-{len(chat.participants)}")
        participant = {
            "account_sid": self.account_sid,
            "chat_service_sid": chat.service,
            "conversation_sid": conversation,
            "sid": participant_sid,
            "identity": identity,
            "attributes": values.get("Attributes") or "{}",
            "messaging_binding": binding,
            "role_sid": None,
            "date_created": moment,
            "date_updated": moment,
            "url": f"{TWILIO_URL}{_base(chat.service, conversation)}/Participants/"
            f"{participant_sid}",
            "last_read_message_index": None,
            "last_read_timestamp": None,
        }
        chat.participants.append(participant)
        return _Answer(201, _scoped(participant, service))

    def _create_conversation(self, service: str | None, form: dict[str, list[str]]) -> _Answer:
        service = service or self.chat_service_sid
        if service not in self.services:
            return _not_found()
        values = {k: v[0] for k, v in form.items()}
        unique = values.get("UniqueName") or None
        if unique and any(
            c.service == service and c.unique_name == unique for c in self.conversations.values()
        ):
            return _Answer(409, _error(409, UNIQUE_NAME_TAKEN))
        conversation = sid("CH", f"created-{self._seed}-{next(self._ids)}")
        self.conversations[conversation] = Conversation(
            conversation,
            service,
            unique_name=unique,
            friendly_name=values.get("FriendlyName") or None,
            attributes=values.get("Attributes") or "{}",
            created=_date(datetime.now(UTC)),
        )
        return _Answer(201, self._conversation_resource(self.conversations[conversation]))

    def _fetch_conversation(self, service: str | None, name: str) -> _Answer:
        chat = self._conversation(service, name)
        if chat is None:  # the path's Sid may be the UniqueName
            scope = service or self.chat_service_sid
            chat = next(
                (
                    c
                    for c in self.conversations.values()
                    if c.service == scope and c.unique_name == name
                ),
                None,
            )
        if chat is None:
            return _not_found()
        return _Answer(200, _scoped(self._conversation_resource(chat), service))

    def _conversation_resource(self, chat: Conversation) -> dict[str, Any]:
        url = f"{TWILIO_URL}{_base(chat.service, chat.sid)}"
        return {
            "account_sid": self.account_sid,
            "chat_service_sid": chat.service,
            "messaging_service_sid": sid("MG", "messaging"),
            "sid": chat.sid,
            "friendly_name": chat.friendly_name,
            "unique_name": chat.unique_name,
            "attributes": chat.attributes,
            "state": "active",
            "date_created": chat.created,
            "date_updated": chat.created,
            "timers": {},
            "url": url,
            "links": {
                "participants": f"{url}/Participants",
                "messages": f"{url}/Messages",
                "webhooks": f"{url}/Webhooks",
            },
            "bindings": None,
        }

    def _participant_conversations(
        self, service: str | None, query: dict[str, list[str]], path: str
    ) -> _Answer:
        scope = service or self.chat_service_sid
        first = {k: v[0] for k, v in query.items()}
        address, identity = first.get("Address"), first.get("Identity")
        found: list[tuple[int, dict[str, Any]]] = []
        for chat in self.conversations.values():
            if chat.service != scope:
                continue
            for p in chat.participants:
                binding = p["messaging_binding"] or {}
                if (address and binding.get("address") == address) or (
                    identity and p["identity"] == identity
                ):
                    found.append((len(found), self._participant_conversation(chat, p, service)))
        return _page("conversations", found, path, query)

    def _participant_conversation(
        self, chat: Conversation, participant: dict[str, Any], service: str | None
    ) -> dict[str, Any]:
        resource = {
            "account_sid": self.account_sid,
            "chat_service_sid": chat.service,
            "participant_sid": participant["sid"],
            "participant_user_sid": None,
            "participant_identity": participant["identity"],
            "participant_messaging_binding": participant["messaging_binding"],
            "conversation_sid": chat.sid,
            "conversation_unique_name": chat.unique_name,
            "conversation_friendly_name": chat.friendly_name,
            "conversation_attributes": chat.attributes,
            "conversation_date_created": chat.created,
            "conversation_date_updated": chat.created,
            "conversation_created_by": "system",
            "conversation_state": "active",
            "conversation_timers": {},
            "links": {
                "participant": f"{TWILIO_URL}{_base(chat.service, chat.sid)}/Participants/"
                f"{participant['sid']}",
                "conversation": f"{TWILIO_URL}{_base(chat.service, chat.sid)}",
            },
        }
        return (
            resource if service else {k: v for k, v in resource.items() if k != "chat_service_sid"}
        )


def _base(service: str | None, conversation: str) -> str:
    scope = f"/Services/{service}" if service else ""
    return f"/v1{scope}/Conversations/{conversation}"


def _scoped(resource: dict[str, Any], service: str | None) -> dict[str, Any]:
    """A resource as the path it was asked by shows it: the short form has no chat_service_sid
    and its URLs are short ones (the spec's two schemas differ in exactly that)."""
    if service:
        return dict(resource)
    short = {k: v for k, v in resource.items() if k != "chat_service_sid"}
    prefix = f"{TWILIO_URL}/v1/Services/{resource['chat_service_sid']}/"
    for key in ("url",):
        if isinstance(short.get(key), str):
            short[key] = short[key].replace(prefix, f"{TWILIO_URL}/v1/")
    if isinstance(short.get("links"), dict):
        short["links"] = {
            k: v.replace(prefix, f"{TWILIO_URL}/v1/") for k, v in short["links"].items()
        }
    return short


def _page(
    key: str,
    items: list[tuple[int, dict[str, Any]]],
    path: str,
    query: dict[str, list[str]],
    most: int = 100,
) -> _Answer:
    """One page of a list, as Twilio pages: `PageSize` (1..`most`, the spec's maximum for that
    list: 50 for Receipts, 100 elsewhere; default 50), `Order` (messages: `asc` or `desc`), and a
    `PageToken` naming the last item seen, so items added meanwhile shift nothing."""
    first = {k: v[0] for k, v in query.items()}
    try:
        size = int(first.get("PageSize", "50"))
        page = int(first.get("Page", "0"))
    except ValueError:
        return _Answer(400, _error(400, 20001))
    if not 1 <= size <= most or page < 0:
        return _Answer(400, _error(400, 20001))
    order = first.get("Order", "asc")
    if order not in ("asc", "desc"):  # the spec's enum (only messages list it)
        return _Answer(400, _error(400, 20001))
    if order == "desc":
        items = list(reversed(items))
    token = first.get("PageToken")
    if token is not None:
        match = _TOKEN.match(token)
        if match is None:
            return _Answer(400, _error(400, 20001))
        last = int(match.group(1))
        items = [i for i in items if (i[0] < last if order == "desc" else i[0] > last)]
    shown = items[:size]
    base = {k: v for k, v in first.items() if k not in ("Page", "PageToken", "PageSize")}

    def url(page_number: int, page_token: str | None) -> str:
        params = {**base, "PageSize": str(size), "Page": str(page_number)}
        if page_token is not None:
            params["PageToken"] = page_token
        return f"{TWILIO_URL}{path}?{urlencode(params)}"

    more = len(items) > size
    return _Answer(
        200,
        {
            key: [item for _, item in shown],
            "meta": {
                "page": page,
                "page_size": size,
                "first_page_url": url(0, None),
                "previous_page_url": url(page - 1, None) if page > 0 else None,
                "url": url(page, token),
                "next_page_url": url(page + 1, f"PT{shown[-1][0]}") if more else None,
                "key": key,
            },
        },
    )


def _date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(DATE_FORMAT)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _not_found() -> _Answer:
    return _Answer(404, _error(404, 20404))


def _error(status: int, code: int) -> dict[str, Any]:
    """Twilio's error body (the spec describes only successes; twilio-python reads these keys)."""
    return {
        "code": code,
        "message": f"simulated error {code}",
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _handler(simulator: TwilioSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall
        # HTTP/1.0: one connection per request, so a refusal meets every client's next request.

        def _serve(self) -> None:
            parsed = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            answer = simulator.handle(
                self.command,
                parsed.path,
                parse_qs(parsed.query),
                form,
                dict(self.headers.items()),
            )
            if answer.refuse_for:  # closed before the answer leaves: the next connect fails
                simulator.refuse_connections(answer.refuse_for)
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


@contextmanager
def running(seed: int = 0) -> Iterator[TwilioSimulator]:
    simulator = TwilioSimulator(seed=seed).start()
    try:
        yield simulator
    finally:
        simulator.stop()
