"""`redeliver send-receipt --status undelivered --error-code 30003`: one onDeliveryUpdated
webhook, signed as Twilio signs it, posted to a running stack (deployed, or offline).

For trying a stack end to end without Twilio: a failure's retry, a late or older status, what
ingest answers. The signature is made with the auth token in the stack's own Twilio secret, by
the code ingest checks it with (redeliver.adapters.twilio.signature), over the URL ingest checks
it against: WebhookBaseUrl + the route's path behind a custom domain, else the WebhookUrl output
(webhook.url_to_sign). Offline that output is unresolved (moto creates no HTTP API): `--url` names
the local API, and an `http://` URL is signed as `https://`, since API Gateway (and the offline
API in its place) terminates TLS and ingest sees the https URL.

Every SID not given is made up (a new message, its receipt), so by default the retry worker
gives the failure up as `message_not_found` after asking Twilio; `--message` with a message the
table knows is a status change of its (first) stored receipt: same receipt, participant,
conversation and Conversation Service.
"""

from __future__ import annotations

import argparse
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests

from redeliver.adapters.twilio.credentials import TwilioCredentials
from redeliver.adapters.twilio.signature import sign
from redeliver.domain.receipts import DELIVERY_EVENT_TYPE, iso
from redeliver_cli.arguments import moment, sid
from redeliver_cli.stack import CommandError, Stack, partition
from redeliver_cli.webhook import url_to_sign

STATUSES = ("sent", "delivered", "read", "undelivered", "failed")
TIMEOUT_SECONDS = 10  # Twilio gives a webhook 5 s; a slow answer is said, not waited out


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "send-receipt",
        help="post one signed delivery receipt to the stack",
        description="Post one onDeliveryUpdated webhook to the stack, signed with the auth "
        "token in its Twilio secret as Twilio signs it: any status and error code. SIDs not "
        "given are made up; --message with a message the table knows takes its conversation "
        "and service.",
    )
    cmd.add_argument(
        "--status",
        required=True,
        help=f"the receipt's status: {', '.join(STATUSES)}, or any other (ingest decides)",
    )
    cmd.add_argument("--error-code", type=int, help="Twilio's ErrorCode (e.g. 30003)")
    cmd.add_argument("--message", type=sid("IM"), metavar="IM…", help="default: a new one")
    cmd.add_argument(
        "--conversation",
        type=sid("CH"),
        metavar="CH…",
        help="default: the message's, when the table knows it; else a new one",
    )
    cmd.add_argument(
        "--service",
        type=sid("IS"),
        metavar="IS…",
        help="ChatServiceSid (default: the message's, when the table knows it; else none)",
    )
    cmd.add_argument(
        "--participant",
        type=sid("MB"),
        metavar="MB…",
        help="the recipient's participant (default: the message's, when the table knows it; "
        "else a new one, which the retry worker gives up as recipient_left)",
    )
    cmd.add_argument(
        "--account", type=sid("AC"), metavar="AC…", help="default: the secret's account_sid"
    )
    cmd.add_argument(
        "--at", type=moment, help="its DateUpdated, ISO 8601 with an offset (default: now)"
    )
    cmd.add_argument(
        "--url",
        help="where to post (default: the URL Twilio is given, WebhookBaseUrl + path or the "
        "WebhookUrl output; offline: the local API `make serve` prints)",
    )
    cmd.add_argument(
        "--dry-run", action="store_true", help="print what it would post, post nothing"
    )
    cmd.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> list[str]:
    stack = Stack.find(args.stack)
    return send_receipt(
        stack,
        status=args.status,
        error_code=args.error_code,
        message=args.message,
        conversation=args.conversation,
        service=args.service,
        participant=args.participant,
        account=args.account,
        at=args.at or datetime.now(UTC),
        url=args.url,
        dry_run=args.dry_run,
    )


def send_receipt(
    stack: Stack,
    *,
    status: str,
    error_code: int | None,
    message: str | None,
    conversation: str | None,
    service: str | None,
    participant: str | None,
    account: str | None,
    at: datetime,
    url: str | None,
    dry_run: bool,
) -> list[str]:
    receipt = signed_receipt(
        stack,
        stack.twilio_credentials(),
        status=status,
        error_code=error_code,
        message=message,
        conversation=conversation,
        service=service,
        participant=participant,
        account=account,
        at=at,
        url=url,
    )
    lines = receipt.describe()
    if dry_run:
        return [
            *lines,
            f"X-Twilio-Signature: {receipt.signature}",
            *(f"  {name}={value}" for name, value in receipt.fields.items()),
            "Dry run: nothing posted.",
        ]
    answer = receipt.post()
    said = f"ingest answered HTTP {answer.status_code}: {answer.text.strip()[:200]}"
    if answer.status_code == 403:
        raise CommandError(
            f"{said}: the signature was refused. Is {receipt.signed} the URL ingest checks "
            "against (WebhookBaseUrl behind a custom domain), and the secret's auth_token the one "
            "ingest reads?",
            output=lines,
        )
    if not answer.ok:
        raise CommandError(said, output=lines)
    return [*lines, said, f"`redeliver trace {receipt.message}` shows what the stack made of it."]


@dataclass(frozen=True)
class SignedReceipt:
    """One onDeliveryUpdated webhook, signed as Twilio signs it: where it is posted (`target`),
    the URL it is signed for (`signed`), its form fields and their signature."""

    target: str
    signed: str
    fields: dict[str, str]
    signature: str

    @property
    def message(self) -> str:
        return self.fields["MessageSid"]

    @property
    def receipt(self) -> str:
        return self.fields["DeliveryReceiptSid"]

    def describe(self) -> list[str]:
        fields = self.fields
        code = f" {fields['ErrorCode']}" if fields["ErrorCode"] else ""
        return [
            f"receipt {self.receipt} of {self.message}: {fields['Status']}{code} at "
            f"{fields['DateUpdated']} (conversation {fields['ConversationSid']}, service "
            f"{fields['ChatServiceSid'] or 'none'}, account {fields['AccountSid']})",
            f"POST {self.target}"
            + (f" (signed for {self.signed})" if self.signed != self.target else ""),
        ]

    def post(self) -> requests.Response:
        """What the stack answered (any HTTP status); nothing answering is a CommandError."""
        try:
            return requests.post(
                self.target,
                data=self.fields,
                headers={"X-Twilio-Signature": self.signature, "User-Agent": "TwilioProxy/1.1"},
                timeout=TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            raise CommandError(
                f"nothing answered at {self.target} ({type(error).__name__}): is the stack "
                "running there? (offline: `make serve`, and --url with the API it prints)",
                output=self.describe(),
            ) from None


def signed_receipt(
    stack: Stack,
    credentials: TwilioCredentials,
    *,
    status: str,
    at: datetime,
    url: str | None,
    error_code: int | None = None,
    message: str | None = None,
    conversation: str | None = None,
    service: str | None = None,
    participant: str | None = None,
    account: str | None = None,
) -> SignedReceipt:
    """A receipt for the stack's webhook, signed with `credentials`' auth token over the URL
    ingest checks (module docstring); a SID not given is made up, or the table's (`message`)."""
    target = url_to_sign(stack, url)
    signed = target.replace("http://", "https://", 1)  # API Gateway terminates TLS
    known = _known(stack, message) if message else {}
    message = message or _new("IM")
    fields = {
        "AccountSid": account or credentials.account_sid,
        "ChatServiceSid": service or known.get("chat_service_sid", ""),
        "ConversationSid": conversation or known.get("conversation_sid") or _new("CH"),
        "MessageSid": message,
        "DeliveryReceiptSid": known.get("receipt_sid") or _new("DY"),
        "ChannelMessageSid": _new("SM"),
        "ParticipantSid": participant or known.get("participant_sid") or _new("MB"),
        "EventType": DELIVERY_EVENT_TYPE,
        "Status": status,
        "ErrorCode": "" if error_code is None else str(error_code),
        "DateCreated": known.get("date_created") or iso(at - timedelta(seconds=1)),
        "DateUpdated": iso(at),
        "Source": "API",
        "ClientIdentity": "",
    }
    return SignedReceipt(target, signed, fields, sign(signed, fields, credentials.auth_token))


def _known(stack: Stack, message: str) -> dict[str, str]:
    """What the table's receipts of `message` say of where it lives (empty: unknown)."""
    receipts = [
        item
        for item in partition(stack.output("ReceiptsTableName"), message)
        if str(item["sk"]).startswith("RCPT#")
    ]
    if not receipts:
        return {}
    first = receipts[0]
    return {
        "receipt_sid": str(first["sk"]).removeprefix("RCPT#"),
        **{
            name: str(first[name])
            for name in ("conversation_sid", "chat_service_sid", "participant_sid", "date_created")
            if first.get(name)
        },
    }


def _new(prefix: str) -> str:
    """A made-up, well-formed SID: `prefix` and 32 hex digits."""
    return prefix + secrets.token_hex(16)
