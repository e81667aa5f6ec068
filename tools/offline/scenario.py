"""A scenario: the app's messages in (`send_messages`), until everything settles (`_settle`), and
its report whatever happens (`run_scenario`), with an SQS round trip probed meanwhile
(`RoundTripProbe`) to set the failure-to-resend time beside."""

from __future__ import annotations

import random
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import boto3

from tools.latency import Latency, failure_to_resend, immediate_codes
from tools.offline.policy import OFFLINE_POLICY
from tools.offline.report import Report, Settlement, collect
from tools.offline.stack import STACK, Offline
from tools.offline.state import pending_failures, queue_depth, reconciling, stuck_receipts
from tools.sqs_poller import poll_forever
from tools.webhook_emitter import Mix, WebhookEmitter

OFFLINE_ANSWER_TIMEOUT_SECONDS = 120.0  # the offline emitter's wait for ingest's answer


class Interrupted(Exception):
    """SIGTERM, turned into an exception so the report is still printed."""


def recipient(seed: int, person: int) -> str:
    """A scenario's n-th recipient's phone number (E.164), its own per seed: a stack shared by
    scenarios (the e2e tests) does not carry one scenario's suppressions into the next."""
    return f"+1555{seed % 100:02d}{person:05d}"


def send_messages(
    offline: Offline,
    messages: int,
    mix: Mix,
    *,
    seed: int,
    rate: float,
    sent: Callable[[int], None] | None = None,
) -> None:
    """The app's own messages, at its own pace, to a few recipients each written to several times
    (a suppressed one's later failures then give up `recipient_suppressed`), on WhatsApp or SMS:
    one conversation per recipient and channel, with the SMS ones through SMS_FROM (where an SMS
    fallback finds them). `sent(n)`: called after each message (a progress line)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible scenario
    people = max(2, messages // 4)
    conversations: dict[tuple[int, str], str] = {}
    started = time.monotonic()
    for n in range(messages):
        time.sleep(max(0.0, started + n / rate - time.monotonic()))
        channel = "whatsapp" if rng.random() < mix.whatsapp_share else "sms"
        person = rng.randrange(people)
        conversation = conversations.get((person, channel))
        if conversation is None:
            conversation = conversations[(person, channel)] = offline.sim.add_conversation(
                name=f"scenario-{seed}-{channel}-{person}",
                channel=channel,
                address=recipient(seed, person),
            )
        offline.sim.add_message(
            conversation,
            body=f"Your code is {rng.randint(0, 999_999):06d}",
            author="shop",
            attributes={"order": n},
            webhook_enabled=True,  # the app sends X-Twilio-Webhook-Enabled, as README says
        )
        if sent is not None:
            sent(n + 1)


def run_scenario(
    offline: Offline,
    messages: int,
    mix: Mix,
    *,
    seed: int,
    timeout: float,
    progress: bool,
    rate: float = 50.0,
    send: Callable[[Offline], None] | None = None,
) -> Report:
    """Messages in, until everything settles; a report whatever happens (a timeout, an error,
    Ctrl-C): it says what did not settle, where it is and why. `send` replaces the app's
    messages (make chaos sends its own)."""
    emitter = WebhookEmitter(
        offline.api.url + "/twilio/delivery-receipts",
        offline.token,
        mix,
        seed=seed,
        max_webhooks=max(messages, 50) * 20,  # a bound, with room for retries' receipts
        twilio=offline.sim,  # Twilio's truth for its Receipts API, lost webhook or not
        # Offline, one ingest container serves every post in turn (Lambda would start another),
        # so on a busy machine a post can queue behind a cold start for longer than Twilio's
        # 5 s: that is the emulator's speed, not ingest's, and the report counts such answers
        # apart. A post still unanswered after this is lost; one that never ends is caught by
        # the run's own deadline, which says it is still in flight.
        answer_timeout=OFFLINE_ANSWER_TIMEOUT_SECONDS,
    ).start()
    offline.emitter = emitter
    offline.sim.listeners.append(emitter.on_message)
    probe = RoundTripProbe().start()
    started = time.monotonic()
    try:
        if send is None:
            say = Progress(progress)
            send_messages(
                offline,
                messages,
                mix,
                seed=seed,
                rate=rate,
                sent=lambda n: say(sending_line(n, messages, time.monotonic() - started, rate)),
            )
        else:
            send(offline)
        settlement = _settle(offline, emitter, started, timeout, progress)
    except (KeyboardInterrupt, Interrupted) as stop:
        settlement = Settlement(False, f"interrupted ({type(stop).__name__})")
    except Exception as error:  # a report is still owed: what failed, and what was done
        traceback.print_exc(file=sys.stderr)
        settlement = Settlement(False, f"the run failed: {type(error).__name__}: {error}")
    elapsed = time.monotonic() - started
    emitter.stop()
    probe.stop()
    if progress and sys.stdout.isatty():
        print()
    report = collect(offline, emitter, messages, elapsed, settlement)
    codes = immediate_codes(OFFLINE_POLICY)
    resends = failure_to_resend(
        emitter.failure_posted, list(offline.sim.created), offline.sim.created_at, codes
    )
    report.latency = Latency(
        resends.seconds, list(probe.samples), codes, before_webhook=resends.before_webhook
    )
    return report


def _settle(
    offline: Offline, emitter: WebhookEmitter, started: float, timeout: float, progress: bool
) -> Settlement:
    """Until nothing is left to do: no webhook to send, no job queued, delayed or in flight and,
    when the sweeper runs, no failure waiting for it.

    `timeout` counts from the last progress (a webhook answered, a retry or ingest invocation,
    a message created), not from the start: a busy machine is slower, not stuck, and a run that
    keeps moving is not cut short. A run that moves for longer than `SETTLE_CAP` timeouts in all
    is stopped all the same (a livelock moves too)."""
    sqs = boto3.client("sqs")
    url = offline.stack.outputs["RetryQueueUrl"]
    quiet = 0
    say = Progress(progress)
    held: list[str] = []  # what the queues' quiet still waits for (the sweeper, the reconciler)
    moved, moved_at = _progress(offline), started
    while True:
        now = time.monotonic()
        if (current := _progress(offline)) != moved:
            moved, moved_at = current, now
        if now - moved_at > timeout:
            return Settlement(False, f"not done within --timeout {timeout:.0f} s of no progress")
        if now - started > timeout * SETTLE_CAP:
            return Settlement(
                False, f"not done within {SETTLE_CAP} x --timeout {timeout:.0f} s, still moving"
            )
        depth = queue_depth(sqs, url)  # queued, in flight, delayed
        quiet = quiet + 1 if sum(depth.values()) == 0 and emitter.idle else 0
        if quiet >= 3:
            marks = pending_failures(offline) if offline.sweeper is not None else []
            stuck = stuck_receipts(offline) if reconciling(offline) else []
            if not marks and not stuck:
                return Settlement(True)
            held = held_by(len(marks), len(stuck))
            quiet = 0
        elif sum(depth.values()) or not emitter.idle:
            held = []
        say(
            f"{time.monotonic() - started:5.1f} s  webhooks {emitter.stats.sent:5d}  receipts "
            f"{sum(offline.api.answers.values()):5d}  messages resent {len(offline.sim.created):4d}"
            f"  waiting for: {waiting_for(depth, emitter.in_flight, held)}"
        )
        time.sleep(0.3 if quiet else 1.0)


SETTLE_CAP = 5  # a run that keeps moving is stopped after this many timeouts in all
PROGRESS_EVERY_SECONDS = 5.0  # a progress line's period when stdout is not a terminal


class Progress:
    """One progress line, rewritten in place on a terminal, else printed every few seconds."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._last = -PROGRESS_EVERY_SECONDS

    def __call__(self, line: str) -> None:
        if not self._enabled:
            return
        if sys.stdout.isatty():
            print("\r  " + line, end="", flush=True)
        elif time.monotonic() - self._last >= PROGRESS_EVERY_SECONDS:
            print("  " + line, flush=True)
            self._last = time.monotonic()


def sending_line(sent: int, total: int, elapsed: float, rate: float) -> str:
    """The send phase: how far, and about how long until every message is sent (at `rate`)."""
    left = max(0.0, (total - sent) / rate) if rate > 0 else 0.0
    return f"{elapsed:5.1f} s  messages {sent} of {total}, about {left:.0f} s to go"


def waiting_for(depth: dict[str, int], webhooks_in_flight: int, held: list[str]) -> str:
    """What a run that has not settled is waiting for, from what is measurable now: the retry
    queue's jobs by kind (a delayed one waits on a policy delay or a re-enqueued wait; one in
    flight is in a handler, or invisible after a failed try or a stale claim), the webhooks not
    yet answered, and what the quiet queues still wait for (`held_by`)."""
    parts = [
        f"{count} {what}"
        for count, what in (
            (webhooks_in_flight, "webhook(s) awaiting ingest"),
            (depth.get("ApproximateNumberOfMessages", 0), "job(s) queued"),
            (depth.get("ApproximateNumberOfMessagesNotVisible", 0), "job(s) in flight"),
            (
                depth.get("ApproximateNumberOfMessagesDelayed", 0),
                "job(s) delayed (a policy delay or a wait)",
            ),
        )
        if count
    ]
    return ", ".join(parts + held) or "nothing (settling)"


def held_by(outbox_marks: int, stuck_at_sent: int) -> list[str]:
    """With the queues quiet: failures the sweeper will re-queue, receipts the reconciler will ask
    Twilio about."""
    return [
        f"{count} {what}"
        for count, what in (
            (outbox_marks, "failure(s) for the sweeper (its grace period)"),
            (stuck_at_sent, "receipt(s) at sent for the reconciler"),
        )
        if count
    ]


def _progress(offline: Offline) -> tuple[int, int, int]:
    """What moves while a run makes progress: answers, the work functions' invocations (the
    schedulers' runs are not progress: they run on a clock), the messages created."""
    invocations = offline.runtime.invocations
    return (
        sum(offline.api.answers.values()),
        invocations["RetryFunction"] + invocations["IngestFunction"],
        len(offline.sim.created),
    )


class RoundTripProbe:
    """A bare SQS round trip on the stack's moto, while a scenario runs: a probe message every
    `every` seconds to a queue of its own, received by the pollers' own loop (poll_forever);
    each sample is from before SendMessage to the record handed to the handler. The report
    sets the failure-to-resend time beside it (tools.latency)."""

    def __init__(self, every: float = 0.25) -> None:
        self.every = every
        self.samples: list[float] = []
        self.errors = 0
        self._sent: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> RoundTripProbe:
        # Clients made here: boto3's default session is not safe to make clients from threads.
        sender, receiver = boto3.client("sqs"), boto3.client("sqs")
        url = sender.create_queue(QueueName=f"{STACK}-round-trip-probe")["QueueUrl"]
        arn = sender.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self._threads = [
            threading.Thread(target=self._send_loop, args=(sender, url), daemon=True),
            threading.Thread(
                target=poll_forever,
                args=(receiver, url, self._received, self._stop),
                kwargs={"queue_arn": arn, "on_error": self._failed},
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _send_loop(self, sqs: Any, url: str) -> None:
        n = 0
        while not self._stop.wait(self.every):
            body, n = f"probe-{n}", n + 1
            with self._lock:
                self._sent[body] = time.monotonic()
            try:
                sqs.send_message(QueueUrl=url, MessageBody=body)
            except Exception:  # moto unreachable: no sample, counted
                self._failed(None)
                with self._lock:
                    self._sent.pop(body, None)

    def _received(self, event: dict[str, Any], _: Any) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            for record in event["Records"]:
                sent = self._sent.pop(record["body"], None)
                if sent is not None:
                    self.samples.append(now - sent)
        return {"batchItemFailures": []}

    def _failed(self, _: Exception | None) -> None:
        with self._lock:
            self.errors += 1
