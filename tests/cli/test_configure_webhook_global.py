"""configure-webhook against what real Twilio does and the simulator did not model (adversarial
review: what we do not see). It failed on the reviewed code, naming the defect."""

from __future__ import annotations

import pytest

from redeliver_cli import main as cli
from tools.stack import deploy
from tools.twilio_sim.simulator import TwilioSimulator


def test_configure_webhook_looks_at_the_global_webhooks_it_turns_off(
    aws: None, sim: TwilioSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Twilio: "If configured, service-scoped webhooks will override your global webhook
    settings such that only the service-scoped hooks will fire" (Per-Service Webhook resource).
    A service with no webhook of its own runs on the account's global ones
    (`/v1/Configuration/Webhooks`: the customer's pre-event moderation on onMessageAdd, its
    archive on onMessageAdded). configure-webhook sets a service-level post webhook there
    without ever fetching the global configuration, so those hooks stop for the service and
    its output says nothing (its "replaces the post-event webhook" note looks only at the
    service's own URL, here none). With TrackMessages the README also asks the app to send with
    X-Twilio-Webhook-Enabled, which is what makes those global hooks fire for its messages."""
    deployed = deploy("global-hooks", {"TrackMessages": "true"})
    service = sim.chat_service_sid
    target = "https://abc123.execute-api.us-east-1.amazonaws.com/twilio/delivery-receipts"
    argv = ["--stack", deployed.name, "configure-webhook", service, "--url", target]
    assert cli.main([*argv, "--twilio-url", sim.url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    asked = [path for method, path in sim.requests if method == "GET"]
    assert "/v1/Configuration/Webhooks" in asked, asked  # the global webhooks, fetched
    assert "global webhooks: none set" in out  # ... and what of them stops: nothing here

    sim.global_webhooks.update(
        post_webhook_url="https://archive.example/post", filters=["onMessageAdded"]
    )
    assert cli.main([*argv, "--twilio-url", sim.url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "the global ones stop for this service" in out
    assert "https://archive.example/post" in out
