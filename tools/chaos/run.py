"""One chaos run on a running stack (`run`): the simulator's faults switched on, the app's
messages sent over one or two Conversation Services with forged webhooks among them (`send`),
the offline scenario until everything settles, and the report judged."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

from tools.chaos.config import Chaos, ChaosConfig
from tools.chaos.report import judge
from tools.chaos.twilio import add_conversation, configure_simulator
from tools.delivery_webhook import FORGERIES
from tools.offline.report import Report
from tools.offline.scenario import recipient, run_scenario
from tools.offline.stack import Offline
from tools.samples import receipt_fields, sid


def send(offline: Offline, chaos: Chaos) -> None:
    """The app's messages over one or two services, with forged webhooks spread among them."""
    config = chaos.config
    rng = random.Random(config.seed)  # noqa: S311 - a reproducible run
    second = chaos.services[1] if len(chaos.services) > 1 else None
    duration = config.messages / config.rate
    emitter = offline.emitter
    assert emitter is not None
    for n in range(config.forged):
        message = f"forged-{config.seed}-{n}"
        fields = {
            **receipt_fields(
                "undelivered",
                message=message,
                receipt=message,
                conversation=message,
                error_code=30003,
                updated=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            ),
            "AccountSid": offline.sim.account_sid,
        }
        chaos.forged.append(sid("IM", message))
        emitter.push_forged(fields, FORGERIES[n % len(FORGERIES)], delay=rng.random() * duration)
    started = time.monotonic()
    for n in range(config.messages):
        time.sleep(max(0.0, started + n / config.rate - time.monotonic()))
        channel = "whatsapp" if rng.random() < config.mix.whatsapp_share else "sms"
        service = second if second and rng.random() < config.second_service else None
        # One recipient per message: a suppression (policy v2) must not silence the others, or
        # the run would exercise no resend at all.
        conversation = add_conversation(
            offline.sim, f"chaos-{config.seed}-{n}", channel, service, recipient(config.seed, n)
        )
        offline.sim.add_message(
            conversation,
            body=f"Your code is {rng.randint(0, 999_999):06d}",
            author="shop",
            attributes={"order": n},
            webhook_enabled=True,  # the app sends X-Twilio-Webhook-Enabled, as README says
        )


def run(offline: Offline, config: ChaosConfig, *, progress: bool) -> tuple[Chaos, Report]:
    """One chaos run on a running stack: what was injected, and the report."""
    missing, second = configure_simulator(offline.sim, config)
    state = Chaos(config, missing, [offline.sim.chat_service_sid, *([second] if second else [])])
    report = run_scenario(
        offline,
        config.messages,
        config.mix,
        seed=config.seed,
        timeout=config.timeout,
        progress=progress,
        rate=config.rate,
        send=lambda running: send(running, state),
    )
    return state, judge(offline, state, report)
