"""Twilio's `onDeliveryUpdated` webhooks, emitted for every message the simulator holds.

For each message (the app's originals and Redeliver's retries alike) it picks an outcome (one of
tools.delivery_webhook.FAILURES for its channel, or delivered) and sends the receipt's status
changes, signed as Twilio signs them, to a webhook URL, with a configurable failure mix,
duplicated webhooks, webhooks arriving out of order (their `DateUpdated` stays truthful), and a
chance that a retry is delivered. Sends are bounded in count and rate, and go only where `url`
points (loopback for the offline stack, or a deployed stack's own URL with `--target`).

Twilio does not resend a webhook: one answered 5xx, or not answered, is lost. The emitter keeps
those (`lost`), so a report can account for them. `Mix.lose_rate` loses webhooks on the way, as a
network drop, throttling or a redeploy does: never sent, kept apart (`dropped`, by status).

Twilio's truth: given the simulator (`twilio`), the emitter sets each receipt there (`set_receipt`,
the same receipt SID and DateUpdated the webhook carries) when its DateUpdated comes, whatever
then happens to the webhook (delivered, duplicated, reordered or lost). The Receipts API then
answers what Twilio knows, so a lost webhook can be recovered by asking, as in production.
DateUpdated is whole seconds, as Twilio's REST dates are (and as twilio-python parses them): a
webhook and the Receipts API then order a receipt's statuses alike.

With TrackMessages, Twilio also sends each message's `onMessageAdded` when the service's webhook
filters include it (as `redeliver configure-webhook` sets them): the emitter sends it first, for
the app's own messages (Source API; Redeliver's retries are created without
X-Twilio-Webhook-Enabled, RetryWebhooksEnabled's default, so Twilio sends none for them), lost on
the way at the same `lose_rate`. Its losses are kept apart from the receipts' (`added_dropped`,
`added_lost`): `lost` stays the receipts' webhooks a report accounts for by status.

`push_forged` sends webhooks that Twilio did not sign (unsigned, signed with another token, or
altered after signing), counted apart (`forged`): each must be refused, and nothing of them
stored.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlparse

from tools.delivery_webhook import FORGERIES, label, receipt_steps, signed_post, webhook_fields
from tools.samples import sid

MESSAGE_ADDED = "onMessageAdded"

FAILURE_STATUSES = ("failed", "undelivered")


class ReceiptBook(Protocol):
    """Where Twilio's truth about a receipt is kept: tools.twilio_sim.simulator.TwilioSimulator."""

    receipts: dict[str, list[dict[str, Any]]]  # message SID → its receipts
    service_webhooks: dict[str, dict[str, Any]]  # service SID → its webhook configuration
    webhook_enabled: set[str]  # messages created with X-Twilio-Webhook-Enabled: true

    def set_receipt(
        self,
        message: str,
        status: str,
        error_code: int | None = None,
        *,
        receipt: int | str = 0,
        updated: datetime | None = None,
    ) -> dict[str, Any]: ...


@dataclass
class Mix:
    failure_rate: float = 0.2  # share of original messages that fail
    retry_success: float = 0.6  # share of retries that are delivered
    duplicate_rate: float = 0.05  # share of webhooks sent twice
    reorder_rate: float = 0.1  # share of receipts whose webhooks arrive in the wrong order
    whatsapp_share: float = 0.3
    spacing: float = 0.05  # seconds between a receipt's status changes
    lose_rate: float = 0.0  # share of webhooks lost on the way (never sent; Twilio's truth stays)


@dataclass
class Stats:
    sent: int = 0
    answers: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)  # monotonic seconds
    errors: int = 0

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.answers.items() if status >= 500)

    def peak_rate(self, window: float = 5.0) -> float:
        """The most answers in any `window` seconds, per second: what ingest sustained."""
        times = sorted(self.answered_at)
        best, start = 0, 0
        for end, moment in enumerate(times):
            while moment - times[start] > window:
                start += 1
            best = max(best, end - start + 1)
        return best / window

    def percentile(self, share: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else 0.0

    def slower_than(self, seconds: float) -> int:
        return sum(1 for latency in self.latencies if latency > seconds)


class WebhookEmitter:
    def __init__(
        self,
        url: str,
        token: str,
        mix: Mix | None = None,
        *,
        seed: int = 0,
        max_webhooks: int = 100_000,
        max_rate: float = 500.0,
        senders: int = 4,
        twilio: ReceiptBook | None = None,
        answer_timeout: float = 10.0,
    ) -> None:
        """`answer_timeout`: how long a post waits for its answer before it counts as lost."""
        self.url = url
        self._answer_timeout = answer_timeout
        self._parsed = urlparse(url)
        self.token = token
        self.mix = mix or Mix()
        self.stats = Stats()
        self.outcomes: Counter[str] = Counter()
        self._seed = seed
        self._max = max_webhooks
        self._interval = 1.0 / max_rate
        self._queue: list[tuple[float, int, dict[str, str], str]] = []
        self.forged = Stats()
        self.lost: list[dict[str, str]] = []  # genuine webhooks answered 5xx or not answered
        self.dropped: list[dict[str, str]] = []  # lost on the way (Mix.lose_rate): never sent
        self.reached: set[str] = set()  # receipt SIDs with a genuine webhook answered 2xx
        # onMessageAdded (TrackMessages), apart from the receipts' webhooks above
        self.added_sent = 0
        self.added_dropped: list[dict[str, str]] = []  # lost on the way: never sent
        self.added_lost: list[dict[str, str]] = []  # answered 5xx or not answered
        # message SID -> (time.monotonic() just before the earliest-posted of its failure
        # webhooks that ingest answered 2xx, that failure's error code): where the report's
        # failure-to-resend time starts. The post, not the answer: ingest queues the job before
        # it answers, so on a busy machine the resend can be stored before the answer is read.
        self.failure_posted: dict[str, tuple[float, int | None]] = {}
        self._twilio = twilio
        # Twilio's truth, due at each status's DateUpdated: (monotonic due, order, fields).
        self._truths: list[tuple[float, int, dict[str, str]]] = []
        self._truth_thread = threading.Thread(target=self._truth_loop, daemon=True)
        self._order = itertools.count()
        self._lock = threading.Condition()
        self._in_flight = 0
        self._stopping = False
        self._senders = [
            threading.Thread(target=self._send_loop, daemon=True) for _ in range(senders)
        ]
        self._next_slot = 0.0

    def start(self) -> WebhookEmitter:
        for thread in self._senders:
            thread.start()
        self._truth_thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._queue and not self._truths and self._in_flight == 0

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def dropped_by_status(self) -> Counter[str]:
        with self._lock:
            return Counter(label(f) for f in self.dropped)

    # -- what Twilio would report for one message ----------------------------------------------

    def on_message(self, message: dict[str, Any], channel: str, recipients: int) -> None:
        """Schedule the receipts of a message just created (the simulator calls this)."""
        is_retry = '"redeliver"' in (message.get("attributes") or "") and '"attempt"' in (
            message.get("attributes") or ""
        )
        if self._message_added_on(message):
            self._schedule_message_added(message)
        for receipt in range(recipients):
            self._schedule_receipt(message, channel, receipt, is_retry)

    def _schedule_receipt(
        self, message: dict[str, Any], channel: str, receipt: int, is_retry: bool
    ) -> None:
        # Seeded per message and receipt: the same scenario whatever order messages arrive in.
        rng = random.Random(f"{self._seed}-{message['sid']}-{receipt}")  # noqa: S311 - replayable
        mix = self.mix
        fails = rng.random() >= mix.retry_success if is_retry else rng.random() < mix.failure_rate
        outcome, steps = receipt_steps(rng, channel, fails=fails)
        self.outcomes[outcome] += 1
        # Whole seconds, as Twilio's REST dates (the Receipts API) are.
        start = datetime.now(UTC)
        now = time.monotonic()
        participant = self._participant(message, receipt)
        events, due = [], []
        for n, (step_status, step_code) in enumerate(steps):
            moment = start + timedelta(seconds=mix.spacing * (n + 1))
            events.append(
                webhook_fields(
                    message, receipt, step_status, step_code, moment, participant=participant
                )
            )
            due.append(now + mix.spacing * (n + 1))
        if self._twilio is not None:
            with self._lock:
                for at, fields in zip(due, events, strict=True):
                    heapq.heappush(self._truths, (at, next(self._order), fields))
                self._lock.notify_all()
        if len(events) > 1 and rng.random() < mix.reorder_rate:
            events.reverse()  # the later status arrives first
        # Its own draws: a scenario without losses is the one it was before they existed.
        losing = random.Random(f"{self._seed}-{message['sid']}-{receipt}-lost")  # noqa: S311 - replayable
        for n, fields in enumerate(events):
            if losing.random() < mix.lose_rate:  # Twilio sent it; it never arrives
                with self._lock:
                    self.dropped.append(fields)
                continue
            self._push(now + mix.spacing * (n + 1), fields)
            if rng.random() < mix.duplicate_rate:
                self._push(now + mix.spacing * (n + 1.5), fields)

    def _message_added_on(self, message: dict[str, Any]) -> bool:
        """Whether Twilio sends `message`'s onMessageAdded: its service's filters include it,
        and its REST create asked for webhooks (X-Twilio-Webhook-Enabled: true; a retry has it
        with RetryWebhooksEnabled)."""
        if self._twilio is None or message["sid"] not in self._twilio.webhook_enabled:
            return False
        config = self._twilio.service_webhooks.get(message["chat_service_sid"]) or {}
        return MESSAGE_ADDED in (config.get("filters") or [])

    def _schedule_message_added(self, message: dict[str, Any]) -> None:
        fields = message_added_fields(message)
        losing = random.Random(f"{self._seed}-{message['sid']}-added-lost")  # noqa: S311 - replayable
        with self._lock:
            self.added_sent += 1
            if losing.random() < self.mix.lose_rate:
                self.added_dropped.append(fields)
                return
        self._push(time.monotonic(), fields)  # before the receipts' first status

    def _participant(self, message: dict[str, Any], receipt: int) -> str:
        """The receipt's participant as Twilio holds it (a participant added through the API,
        as an SMS fallback's, has its own SID); without the simulator, the first ones'."""
        known = self._twilio.receipts.get(message["sid"]) if self._twilio is not None else None
        if known and receipt < len(known):
            return str(known[receipt]["participant_sid"])
        return sid("MB", f"{message['conversation_sid']}-{receipt}")

    def _push(self, at: float, fields: dict[str, str], forgery: str = "") -> None:
        with self._lock:
            heapq.heappush(self._queue, (at, next(self._order), fields, forgery))
            self._lock.notify_all()  # the truth thread waits on the same condition

    def push_forged(self, fields: dict[str, str], forgery: str, delay: float = 0.0) -> None:
        """Send `fields` without Twilio's signature: `forgery` is one of FORGERIES."""
        if forgery not in FORGERIES:
            raise ValueError(f"forgery must be one of {FORGERIES}")
        self._push(time.monotonic() + delay, fields, forgery)

    # -- Twilio's truth ------------------------------------------------------------------------

    def _truth_loop(self) -> None:
        """Each status becomes what the Receipts API reports when its DateUpdated comes."""
        while True:
            with self._lock:
                while not self._stopping and (
                    not self._truths or self._truths[0][0] > time.monotonic()
                ):
                    wait = (self._truths[0][0] - time.monotonic()) if self._truths else 0.5
                    self._lock.wait(timeout=max(0.001, wait))
                if self._stopping:
                    return
                _, _, fields = heapq.heappop(self._truths)
            assert self._twilio is not None
            code = fields["ErrorCode"]
            self._twilio.set_receipt(
                fields["MessageSid"],
                fields["Status"],
                int(code) if code else None,
                receipt=fields["DeliveryReceiptSid"],
                updated=datetime.fromisoformat(fields["DateUpdated"]),
            )
            with self._lock:
                self._lock.notify_all()  # `idle` may have become true

    # -- sending -----------------------------------------------------------------------------

    def _send_loop(self) -> None:
        connection: http.client.HTTPConnection | None = None
        while True:
            with self._lock:
                while not self._stopping and (
                    not self._queue
                    or self._queue[0][0] > time.monotonic()
                    or self.stats.sent >= self._max
                ):
                    timeout = (self._queue[0][0] - time.monotonic()) if self._queue else None
                    self._lock.wait(timeout=max(0.001, timeout) if timeout else 0.5)
                if self._stopping:
                    return
                _, _, fields, forgery = heapq.heappop(self._queue)
                self._in_flight += 1
                (self.forged if forgery else self.stats).sent += 1
                slot = max(time.monotonic(), self._next_slot)
                self._next_slot = slot + self._interval
            time.sleep(max(0.0, slot - time.monotonic()))  # the rate bound
            connection = self._post(connection, fields, forgery)
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def _post(
        self,
        connection: http.client.HTTPConnection | None,
        fields: dict[str, str],
        forgery: str = "",
    ) -> http.client.HTTPConnection | None:
        # Twilio signs the URL it was given; offline, https is what API Gateway would show.
        signed = (
            self.url
            if self._parsed.scheme == "https"
            else self.url.replace("http://", "https://", 1)
        )
        body, headers = signed_post(signed, fields, self.token, forgery)
        stats = self.forged if forgery else self.stats
        started = time.perf_counter()
        posted = time.monotonic()
        try:
            if connection is None:
                factory = (
                    http.client.HTTPSConnection
                    if self._parsed.scheme == "https"
                    else http.client.HTTPConnection
                )
                connection = factory(self._parsed.netloc, timeout=self._answer_timeout)
            connection.request("POST", self._parsed.path or "/", body, headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            with self._lock:
                stats.errors += 1
                if not forgery:
                    (self.added_lost if _added(fields) else self.lost).append(fields)
            return None
        answered = time.monotonic()
        with self._lock:
            stats.latencies.append(time.perf_counter() - started)
            stats.answered_at.append(answered)
            stats.answers[response.status] += 1
            if response.status >= 500 and not forgery:
                # Twilio does not resend
                (self.added_lost if _added(fields) else self.lost).append(fields)
            elif response.status < 300 and not forgery and not _added(fields):
                self.reached.add(fields["DeliveryReceiptSid"])
                if fields["Status"] in FAILURE_STATUSES:
                    code = int(fields["ErrorCode"]) if fields["ErrorCode"] else None
                    earliest = self.failure_posted.get(fields["MessageSid"])
                    if earliest is None or posted < earliest[0]:
                        self.failure_posted[fields["MessageSid"]] = (posted, code)
        return connection


def _added(fields: dict[str, str]) -> bool:
    return fields.get("EventType") == MESSAGE_ADDED


def message_added_fields(message: dict[str, Any]) -> dict[str, str]:
    """The onMessageAdded Twilio sends for `message` (sent by the app through the API)."""
    return {
        "AccountSid": message["account_sid"],
        "ChatServiceSid": message["chat_service_sid"],
        "ConversationSid": message["conversation_sid"],
        "MessageSid": message["sid"],
        "EventType": MESSAGE_ADDED,
        "Index": str(message.get("index", 0)),
        "Author": str(message.get("author") or "system"),
        "Body": str(message.get("body") or ""),
        "Attributes": str(message.get("attributes") or "{}"),
        "DateCreated": message["date_created"],
        "Source": "API",
        "ClientIdentity": "",
    }
