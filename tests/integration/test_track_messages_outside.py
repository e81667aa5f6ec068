"""TrackMessages against what real Twilio sends and the simulator did not (adversarial review:
what we do not see). Each test failed on the reviewed code, naming the defect it proved."""

from __future__ import annotations

import json
import uuid

import pytest

from redeliver.adapters.dynamodb.table import STUCK_SINCE
from redeliver.adapters.twilio.conversations import ConversationsGateway
from redeliver.domain.chain import NewMessage
from tests.integration.retry_system import T0, _iso
from tests.integration.test_reconcile import Reconciling
from tests.integration.test_twilio_sim import FixedCredentials
from tests.lambdas import invoke
from tools.apigw import http_api_event
from tools.samples import message_added_fields
from tools.stack import TEST_AUTH_TOKEN, DeployedStack, deploy
from tools.twilio_sim.simulator import TwilioSimulator
from tools.webhook_emitter import WebhookEmitter


@pytest.fixture
def rec(aws: None, sim: TwilioSimulator, monkeypatch: pytest.MonkeyPatch) -> Reconciling:
    stack: DeployedStack = deploy(f"redeliver-{uuid.uuid4().hex[:8]}", {"TrackMessages": "true"})
    return Reconciling(stack, sim, monkeypatch)


def test_a_long_non_latin_message_within_twilios_limits_is_still_tracked(rec: Reconciling) -> None:
    """onMessageAdded carries the message's Body and Attributes (the receipts' webhook carries
    neither). Twilio takes an outbound SMS/WhatsApp body of 1,600 characters and message
    Attributes of 4 KB (docs: Conversations limits). 1,600 Cyrillic characters form-encode to
    9,600 bytes (%D0%96 each) and 4 KB of JSON to ~9 KB: the signed webhook is over ingest's
    16 KiB MAX_BODY_BYTES (sized for a receipt, "well under 1 KiB"), so ingest answers 400,
    Twilio does not resend, and the message is never tracked: exactly the message TrackMessages
    exists to catch, if its receipts' webhooks are lost too."""
    conversation, message = rec.message()
    fields = message_added_fields(message=message, conversation=conversation, created=_iso(T0))
    fields["ChatServiceSid"] = rec.sim.service_of(conversation)
    fields["Body"] = "Ж" * 1600  # Twilio's limit for an SMS or WhatsApp body
    attributes = json.dumps({f"k{n:03d}": "v" for n in range(360)}, separators=(",", ":"))
    assert len(attributes.encode()) <= 4096  # Twilio's limit for a message's Attributes
    fields["Attributes"] = attributes
    answer = invoke(rec.ingest, http_api_event(fields, token=TEST_AUTH_TOKEN))
    assert answer["statusCode"] == 200, answer["body"]
    item = rec.item(message, "TRACKED")
    assert item is not None
    assert int(item[STUCK_SINCE]) == int(T0.timestamp())


def _emitter_on(sim: TwilioSimulator) -> WebhookEmitter:
    """The offline emitter listening to the simulator (never started: nothing is posted), the
    service subscribed to onMessageAdded as `redeliver configure-webhook` does with
    TrackMessages."""
    sim.service_webhooks[sim.chat_service_sid] = {
        "post_webhook_url": "https://example.invalid/twilio/delivery-receipts",
        "method": "POST",
        "filters": ["onDeliveryUpdated", "onMessageAdded"],
    }
    emitter = WebhookEmitter("http://127.0.0.1:9/", TEST_AUTH_TOKEN, twilio=sim)
    sim.listeners.append(emitter.on_message)
    return emitter


def test_the_simulator_sends_no_message_added_for_a_rest_message_without_the_header(
    sim: TwilioSimulator,
) -> None:
    """Real Twilio fires Conversations webhooks for an action taken through the REST API only
    when the request carries `X-Twilio-Webhook-Enabled: true` (Twilio support: "Troubleshooting
    Webhook Delivery for Conversations or Chat"; the OAI spec's header on Messages POST). The
    emitter sends every app message's onMessageAdded whatever its header, so the offline and
    chaos runs (and the sample report's "0 invisible" with TrackMessages) show tracking that a
    production app sending the usual way (no header) never gets: TrackMessages then tracks
    nothing, and nothing says so (no metric or smoke check of onMessageAdded arriving)."""
    emitter = _emitter_on(sim)
    conversation = sim.add_conversation()
    app_message = NewMessage(author="system", body="Your code is 123456", attributes={})
    ConversationsGateway(FixedCredentials(sim.account_sid), sim.url, 2.0, False).create_message(
        sim.chat_service_sid, conversation, app_message
    )
    sim.notify()
    assert [m["x_twilio_webhook_enabled"] for m in sim.created] == [None]
    assert emitter.added_sent == 0  # Twilio sends none: the REST create had no header


def test_the_simulator_sends_message_added_for_a_retry_created_with_the_header(
    sim: TwilioSimulator,
) -> None:
    """The other way round: with RetryWebhooksEnabled=true each retry is created with
    `X-Twilio-Webhook-Enabled: true`, and real Twilio then sends its onMessageAdded (Source API),
    which ingest tracks like any message; the emitter never sends one for a retry (it decides on
    the attributes' marker, not the header), so that path is never run offline or in chaos."""
    emitter = _emitter_on(sim)
    conversation = sim.add_conversation()
    retry = NewMessage(
        author="system",
        body="again",
        attributes={"redeliver": {"retry_of": "IM1", "root": "IM1", "attempt": 1}},
    )
    ConversationsGateway(FixedCredentials(sim.account_sid), sim.url, 2.0, True).create_message(
        sim.chat_service_sid, conversation, retry
    )
    sim.notify()
    assert [m["x_twilio_webhook_enabled"] for m in sim.created] == ["true"]
    assert emitter.added_sent == 1  # Twilio sends it: the REST create asked for webhooks
