"""`redeliver configure-webhook IS…`: point a Conversation Service's post-event webhook at the
stack, with the stack's own Twilio credentials (the secret its functions read).

Twilio replaces the filter list on update, so the command merges onDeliveryUpdated into the
filters already there, and says when it replaces another post-event webhook, or when the service
had none of its own and the account's global webhooks, which then stop for it, are set.

The URL is the one ingest checks signatures against: `WebhookBaseUrl` + the route's path when the
stack sits behind a custom domain (also for a stack whose `WebhookUrl` output predates following
it), else the `WebhookUrl` output. A `--url` that is not that URL is refused there: every webhook
would be rejected (403).

Twilio has one `Method` for a service's pre- and post-event webhooks, and ingest takes POST only:
switching a GET service to POST also changes how Twilio calls the customer's pre-event webhook,
so the command says so, and does it only with `--switch-to-post`.

With the stack's `TrackMessages` on (and reconciliation, which it needs), onMessageAdded is
added to the filters too, so ingest records every message sent by the API or an SDK; with it off,
onMessageAdded is taken out again (a filter Redeliver added, and only one ingest would ignore).
"""

from __future__ import annotations

import argparse

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from redeliver_cli.arguments import sid
from redeliver_cli.stack import CommandError, Stack

DELIVERY_EVENT = "onDeliveryUpdated"
MESSAGE_ADDED_EVENT = "onMessageAdded"  # with TrackMessages
WEBHOOK_PATH = "/twilio/delivery-receipts"  # IngestFunction's HttpApi event (tests/cli checks)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "configure-webhook",
        help="point a service's webhook here",
        description="Point a Conversation Service's post-event webhook "
        "at the stack, adding onDeliveryUpdated to its filters.",
    )
    cmd.add_argument("service_sid", metavar="IS…", type=sid("IS"))
    cmd.add_argument("--dry-run", action="store_true", help="show before and after, change nothing")
    cmd.add_argument(
        "--url",
        help="the webhook URL (default: the stack's WebhookBaseUrl + the route's path when set, "
        "else its WebhookUrl output)",
    )
    cmd.add_argument(
        "--switch-to-post",
        action="store_true",
        help="the service's webhooks use GET: switch them to POST (Twilio has one method for "
        "the pre- and post-event webhooks)",
    )
    cmd.add_argument("--twilio-url", help=argparse.SUPPRESS)  # the simulator, offline
    cmd.set_defaults(
        run=lambda args: configure_webhook(
            Stack.find(args.stack),
            args.service_sid,
            args.dry_run,
            args.url,
            args.twilio_url,
            switch_to_post=args.switch_to_post,
        )
    )


def webhook_url(stack: Stack) -> str:
    """The URL ingest checks Twilio's signatures against (DESIGN contract).

    Offline, moto creates no API Gateway HTTP API, so the `WebhookUrl` output keeps its
    `${WebhookApi}` unresolved: no URL exists to give Twilio, and that is said, not printed."""
    base = stack.parameters.get("WebhookBaseUrl", "")
    if base:  # as ingest reads it (redeliver.settings)
        return base.rstrip("/") + WEBHOOK_PATH
    url = stack.output("WebhookUrl")
    if "${" in url:
        raise CommandError(
            f"stack {stack.name!r} has no webhook URL: its WebhookUrl output is unresolved "
            f"({url}), as on the offline stack, where moto creates no HTTP API. It cannot be "
            "resolved offline: give the URL with --url (offline, the local API `make serve` "
            f"prints, e.g. http://127.0.0.1:3000{WEBHOOK_PATH})"
        )
    return url


def tracks_messages(stack: Stack) -> bool:
    """Whether the stack's ingest records onMessageAdded (template.yaml's TrackMessagesOn)."""
    return stack.parameters.get("TrackMessages", "false") == "true" and stack.parameters.get(
        "ReconcileAfterMinutes", "30"
    ) not in ("0", "")


def wanted_filters(stack: Stack, filters: list[str]) -> list[str]:
    """The service's filters with onDeliveryUpdated, and onMessageAdded as TrackMessages says
    (Twilio replaces the list as a whole: the others are kept)."""
    wanted = set(filters) | {DELIVERY_EVENT}
    if tracks_messages(stack):
        wanted.add(MESSAGE_ADDED_EVENT)
    else:
        wanted.discard(MESSAGE_ADDED_EVENT)
    return sorted(wanted)


def url_to_sign(stack: Stack, url: str | None) -> str:
    """The URL Twilio is to post to: `url` when given, unless the stack checks signatures
    against its WebhookBaseUrl and `url` is another (every webhook would be rejected, 403)."""
    if url and not stack.parameters.get("WebhookBaseUrl"):
        return url
    signed = webhook_url(stack)
    if url and url != signed:
        raise CommandError(
            f"the stack checks signatures against WebhookBaseUrl: Twilio must post to {signed}, "
            f"or every webhook is rejected (403), not to {url}"
        )
    return signed


def global_note(client: Client) -> str:
    """A service with no webhooks of its own runs on the account's global ones; once it has its
    own, Twilio fires only those for it (Per-Service Webhook resource): say which stop."""
    account = client.conversations.v1.configuration.webhooks().fetch()
    if not (account.pre_webhook_url or account.post_webhook_url):
        return "  global webhooks: none set, nothing else stops firing for this service"
    return (
        "  note: the service has no webhooks of its own and runs on the account's global ones "
        f"(pre-event {account.pre_webhook_url or '(none)'}, post-event "
        f"{account.post_webhook_url or '(none)'}, filters {account.filters or []}); once it has "
        "its own, Twilio fires only those for it, so the global ones stop for this service: set "
        "them on the service too (Configuration/Webhooks) if they must go on"
    )


def configure_webhook(
    stack: Stack,
    service_sid: str,
    dry_run: bool,
    url: str | None,
    twilio_url: str | None,
    *,
    switch_to_post: bool = False,
) -> list[str]:
    target = url_to_sign(stack, url)
    if not target.startswith("https://") and not url:
        raise CommandError(f"the stack's WebhookUrl is not an https URL: {target}")
    credentials = stack.twilio_credentials()
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
    filters = wanted_filters(stack, list(before.filters or []))  # Twilio replaces the list
    lines = [
        f"Conversation Service {service_sid}",
        f"  before: POST-webhook {before.post_webhook_url or '(none)'}, method "
        f"{before.method}, filters {before.filters or []}",
        f"  after:  POST-webhook {target}, method POST, filters {filters}",
    ]
    if MESSAGE_ADDED_EVENT in (before.filters or []) and MESSAGE_ADDED_EVENT not in filters:
        lines.append(
            f"  note: {MESSAGE_ADDED_EVENT} is taken out of the filters: the stack's TrackMessages "
            "is off, and ingest would only ignore it"
        )
    if before.post_webhook_url and before.post_webhook_url != target:
        lines.append(
            f"  note: this replaces the post-event webhook {before.post_webhook_url}: "
            "every event in the filters goes to Redeliver now"
        )
    if not before.post_webhook_url and not before.pre_webhook_url:
        lines.append(global_note(client))
    switching = (before.method or "POST").upper() != "POST"
    if switching:
        pre = before.pre_webhook_url
        lines.append(
            f"  note: the service's webhooks use {before.method}, and Twilio has one method for "
            "its pre- and post-event webhooks: "
            + (
                f"the pre-event webhook {pre} is called with POST too"
                if pre
                else "a pre-event webhook set later is called with POST too"
            )
            + (
                ""
                if switch_to_post
                else "; Redeliver takes POST only: run again with --switch-to-post to do it"
            )
        )
    if dry_run:
        return [*lines, "Dry run: nothing changed."]
    if switching and not switch_to_post:
        raise CommandError(
            "\n".join([*lines, f"Not changed: the service's webhooks use {before.method}."])
        )
    webhooks.update(post_webhook_url=target, filters=filters, method="POST")
    return [*lines, "Updated."]
