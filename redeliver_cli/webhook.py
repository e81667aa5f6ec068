"""`redeliver configure-webhook IS…`: point a Conversation Service's post-event webhook at the
stack, with the stack's own Twilio credentials (the secret its functions read).

Twilio replaces the filter list on update, so the command merges onDeliveryUpdated into the
filters already there, and says when it replaces another post-event webhook.
"""

from __future__ import annotations

import argparse
import json
import re

import boto3
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from redeliver.credentials import TwilioCredentials
from redeliver_cli.stack import CommandError, Stack

DELIVERY_EVENT = "onDeliveryUpdated"
_SERVICE_SID = re.compile(r"^IS[0-9a-fA-F]{32}$")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "configure-webhook",
        help="point a service's webhook here",
        description="Point a Conversation Service's post-event webhook "
        "at the stack, adding onDeliveryUpdated to its filters.",
    )
    cmd.add_argument("service_sid", metavar="IS…")
    cmd.add_argument("--dry-run", action="store_true", help="show before and after, change nothing")
    cmd.add_argument("--url", help="the webhook URL (default: the stack's WebhookUrl output)")
    cmd.add_argument("--twilio-url", help=argparse.SUPPRESS)  # the simulator, offline
    cmd.set_defaults(
        run=lambda args: configure_webhook(
            Stack.find(args.stack), args.service_sid, args.dry_run, args.url, args.twilio_url
        )
    )


def configure_webhook(
    stack: Stack, service_sid: str, dry_run: bool, url: str | None, twilio_url: str | None
) -> list[str]:
    if not _SERVICE_SID.match(service_sid):
        raise CommandError(f"{service_sid!r} is not a Conversation Service SID (IS…)")
    target = url or stack.output("WebhookUrl")
    if not target.startswith("https://") and not url:
        raise CommandError(f"the stack's WebhookUrl is not an https URL: {target}")
    secret = boto3.client("secretsmanager").get_secret_value(
        SecretId=stack.parameters["TwilioSecretArn"]
    )["SecretString"]
    credentials = TwilioCredentials.from_secret(json.loads(secret))
    client = Client(
        credentials.api_key_sid or credentials.account_sid,
        credentials.api_key_secret or credentials.auth_token,
        account_sid=credentials.account_sid,
        http_client=TwilioHttpClient(timeout=10),
    )
    base = twilio_url or stack.parameters.get("TwilioConversationsUrl", "")
    if base:
        client.conversations.base_url = base.rstrip("/")
    webhooks = client.conversations.v1.services(service_sid).configuration.webhooks()
    before = webhooks.fetch()
    filters = sorted(set(before.filters or []) | {DELIVERY_EVENT})  # Twilio replaces the list
    lines = [
        f"Conversation Service {service_sid}",
        f"  before: POST-webhook {before.post_webhook_url or '(none)'}, method "
        f"{before.method}, filters {before.filters or []}",
        f"  after:  POST-webhook {target}, method POST, filters {filters}",
    ]
    if before.post_webhook_url and before.post_webhook_url != target:
        lines.append(
            f"  note: this replaces the post-event webhook {before.post_webhook_url}: "
            "every event in the filters goes to Redeliver now"
        )
    if dry_run:
        return [*lines, "Dry run: nothing changed."]
    webhooks.update(post_webhook_url=target, filters=filters, method="POST")
    return [*lines, "Updated."]
