"""`redeliver smoke`: after `sam deploy`, or beside `make serve`, is the stack ready for Twilio's
webhooks? One line per check (✓ passed; ✗ failed, and what to do; a dash: skipped, and why); exit
code 1 when one failed. Nothing is changed but one test receipt stored, as a webhook would store it.

- **The secret** (`TwilioSecretArn`) exists and is JSON with account_sid and auth_token (the token
  is never printed), and Twilio accepts it: one cheap authenticated call, the account's
  Conversation Services with page size 1, through the layer's own client (make_client, with a
  timeout). With the auth token, since Twilio signs every webhook with it; with the API key too
  when the secret has one, since the functions' REST calls use that. Offline the simulator
  answers, and it takes any credentials: there this proves the client's path, not the token.
- **The webhook answers a signed test receipt**: a `delivered` receipt of a made-up message
  (a delivered status never enqueues a retry), signed with the secret's auth token over the URL
  ingest checks and posted as send-receipt posts one (send_receipt.signed_receipt). 200, then
  read back from the table with a consistent GetItem: stored. It stays there until its TTL, as
  any receipt does. A 403 says that ingest verifies with another token than the secret's (its
  containers keep the secret for minutes), or checks another URL (WebhookBaseUrl).
- **The alarms exist**: every AWS::CloudWatch::Alarm of the stack's own template is in
  CloudWatch, under the name the stack's resources give it (the template names none); one whose
  Condition is off is not expected. Offline this cannot run: moto's CloudFormation creates no
  alarm (`_moto`), which is said, and the check is skipped rather than passed or failed.
- **The services' webhooks point at the stack**: each `--service` has the URL ingest checks
  (webhook.url_to_sign: WebhookBaseUrl's, the WebhookUrl output, or `--url`) as its
  post_webhook_url, onDeliveryUpdated among its filters (and onMessageAdded with TrackMessages),
  and method POST. With none named:
  configure-webhook configures the one service it is given and keeps no list, so the account's
  services are asked, and those posting here are checked; none posting here fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import boto3
import requests
from botocore.exceptions import BotoCoreError, ClientError
from twilio.base.exceptions import TwilioException
from twilio.http.response import Response
from twilio.rest import Client

from redeliver.adapters.dynamodb.table import receipt_key
from redeliver.adapters.twilio.client import make_client
from redeliver.adapters.twilio.conversations import AUTHENTICATION_FAILED, status_and_code
from redeliver.adapters.twilio.credentials import TwilioCredentials
from redeliver_cli.arguments import sid
from redeliver_cli.endpoint import is_loopback
from redeliver_cli.send_receipt import signed_receipt
from redeliver_cli.stack import CommandError, Stack, iso
from redeliver_cli.webhook import (
    DELIVERY_EVENT,
    MESSAGE_ADDED_EVENT,
    tracks_messages,
    url_to_sign,
)

TWILIO_TIMEOUT_SECONDS = 10
SERVICES_LISTED = 100  # with no --service: the account's services asked about, at most
ALARM = "AWS::CloudWatch::Alarm"
DESCRIBED_AT_ONCE = 100  # DescribeAlarms takes at most 100 names

Outcome = Literal["passed", "failed", "skipped"]
MARKS = {"passed": "✓", "failed": "✗", "skipped": "–"}  # noqa: RUF001 - the en dash is meant
ASCII_MARKS = {"passed": "ok", "failed": "FAIL", "skipped": "--"}

STORED_CREDENTIALS = "the secret"
CREDENTIALS = "Twilio accepts the secret's credentials"
ANSWERS = "the webhook answers a signed test receipt"
VERIFIES = "the secret verifies"
STORED = "the test receipt is stored"
ALARMS = "the alarms exist"
WEBHOOKS = "the services' webhooks point at the stack"

FIX_STORE = (
    "store it as README: Deploy, step 1 says (JSON with account_sid and auth_token), in the "
    "stack's region; the stack's TwilioSecretArn names it"
)
FIX_AUTH = (
    "put the account's current auth token in the secret (README: Deploy, step 1; rotating it "
    "without losing a webhook: the same step)"
)
FIX_API_KEY = (
    "put an API key that may use Conversations in the secret, or remove api_key_sid and "
    "api_key_secret to use the auth token (README: Deploy, step 1)"
)
FIX_TWILIO = "Twilio's status (status.twilio.com) and this machine's network; then run again"
FIX_URL = (
    "give the URL Twilio posts to with --url (the WebhookUrl output; behind a custom domain, "
    "WebhookBaseUrl: README: Parameters; offline, the API `make serve` prints)"
)
FIX_CONFIGURE = "`redeliver configure-webhook IS…` ({}README: Deploy, step 3)"


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    detail: str
    fix: str = ""  # what to do, when it failed


def passed(name: str, detail: str) -> Check:
    return Check(name, "passed", detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, "failed", detail, fix)


def skipped(name: str, detail: str) -> Check:
    return Check(name, "skipped", detail)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser(
        "smoke",
        help="check a deployed (or offline) stack end to end",
        description="After `sam deploy`: the Twilio secret and its credentials, a signed test "
        "receipt through the webhook into the table, the template's alarms in CloudWatch, and "
        "the Conversation Services' webhooks pointing here. One line per check; exit code 1 "
        "if one fails. The test receipt (delivered, a made-up message: no retry) stays in the "
        "table until its TTL.",
    )
    cmd.add_argument(
        "--service",
        dest="services",
        action="append",
        type=sid("IS"),
        metavar="IS…",
        help="a Conversation Service whose webhook must point here (repeatable; default: the "
        "account's services that post here, and at least one must)",
    )
    cmd.add_argument(
        "--url",
        help="the webhook URL (default: the stack's WebhookBaseUrl + the route's path when set, "
        "else its WebhookUrl output; offline: the local API `make serve` prints)",
    )
    cmd.add_argument("--twilio-url", help=argparse.SUPPRESS)  # the simulator, offline
    cmd.set_defaults(
        run=lambda args: smoke(
            Stack.find(args.stack),
            url=args.url,
            services=args.services or [],
            twilio_url=args.twilio_url,
        )
    )


def smoke(
    stack: Stack,
    *,
    url: str | None,
    services: Sequence[str],
    twilio_url: str | None = None,
    now: datetime | None = None,
) -> list[str]:
    """The checks, in order, as lines; a CommandError carrying them when one failed. Twilio is
    asked at `twilio_url` when given, else the stack's TwilioConversationsUrl (offline: the
    simulator), else Twilio itself."""
    checks: list[Check] = []
    credentials: TwilioCredentials | None = None
    try:
        credentials = stack.twilio_credentials()
    except CommandError as error:
        checks.append(failed(STORED_CREDENTIALS, str(error), FIX_STORE))
    client: Client | None = None
    if credentials is None:
        checks.append(skipped(CREDENTIALS, "the secret could not be read"))
    else:
        checks.append(passed(STORED_CREDENTIALS, _secret_said(stack, credentials)))
        base = twilio_url or stack.parameters.get("TwilioConversationsUrl", "")
        check, client = _credentials_work(credentials, base.rstrip("/"))
        checks.append(check)
    checks += _webhook(stack, credentials, url, now or datetime.now(UTC))
    checks.append(_alarms(stack))
    checks += _webhooks(stack, client, url, services)
    lines = [f"redeliver smoke: stack {stack.name}", *render(checks)]
    failures = [check.name for check in checks if check.outcome == "failed"]
    if failures:
        raise CommandError(
            f"{len(failures)} of {len(checks)} checks failed: {'; '.join(failures)}",
            output=lines,
        )
    return lines


def render(checks: Sequence[Check]) -> list[str]:
    """One line per check, and its fix under a failed one; ASCII marks where the terminal's
    encoding has no ✓."""
    try:
        "".join(MARKS.values()).encode(sys.stdout.encoding or "ascii")
        marks = MARKS
    except (UnicodeEncodeError, LookupError):
        marks = ASCII_MARKS
    lines = []
    for check in checks:
        skipped = "skipped: " if check.outcome == "skipped" else ""
        lines.append(f"{marks[check.outcome]} {check.name}: {skipped}{check.detail}")
        if check.fix:
            lines.append(f"    fix: {check.fix}")
    counts = {o: sum(c.outcome == o for c in checks) for o in ("passed", "failed", "skipped")}
    lines.append(
        f"{len(checks)} checks: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped"
    )
    return lines


# -- the secret, and Twilio's answer to it -------------------------------------------------------


def _secret_said(stack: Stack, credentials: TwilioCredentials) -> str:
    keys = f"account_sid {credentials.account_sid}, auth_token (not shown)"
    if credentials.api_key_sid and credentials.api_key_secret:
        keys += f", api_key_sid {credentials.api_key_sid} and api_key_secret (not shown)"
    return f"{stack.parameters['TwilioSecretArn']} is JSON with {keys}"


def _credentials_work(credentials: TwilioCredentials, base: str) -> tuple[Check, Client | None]:
    """The account's Conversation Services, page size 1: with the auth token (Twilio signs the
    webhooks with it), then with the API key when there is one (the functions' REST calls use
    it). The client returned is the functions' (the key's when there is one)."""
    ways = [("the auth token", replace(credentials, api_key_sid="", api_key_secret=""))]
    if credentials.api_key_sid and credentials.api_key_secret:
        ways.append((f"the API key {credentials.api_key_sid}", credentials))
    client = None
    for what, way in ways:
        client = make_client(way, TWILIO_TIMEOUT_SECONDS, base)
        try:
            client.conversations.v1.services.list(limit=1)
        except (TwilioException, requests.RequestException) as error:
            fix = FIX_TWILIO
            if _refused(error):
                fix = FIX_API_KEY if way.api_key_sid else FIX_AUTH
            return failed(
                CREDENTIALS, f"{what} of account {credentials.account_sid}: {_said(error)}", fix
            ), None
    where = f"; asked at {base}, not Twilio: the offline simulator takes any" if base else ""
    return passed(
        CREDENTIALS,
        f"{' and '.join(what for what, _ in ways)} of account {credentials.account_sid} "
        f"list its Conversation Services (GET /v1/Services, page size 1{where})",
    ), client


def _refused(error: Exception) -> bool:
    """Twilio refused the credentials (401, 403, 20003), not the request."""
    status, code, _ = _answer(error)
    return status in (401, 403) or code == AUTHENTICATION_FAILED


def _answer(error: Exception) -> tuple[int, int | None, str]:
    """Twilio's status, code and message: from the exception of a request, or from the answer a
    list's page carries (twilio-python raises a bare TwilioException for those)."""
    if not isinstance(error, TwilioException):
        return 0, None, ""
    status, code = status_and_code(error)
    message = getattr(error, "msg", None) or getattr(error, "detail", None) or ""
    response = error.args[1] if len(error.args) > 1 else None
    if not message and isinstance(response, Response):
        try:
            message = str(json.loads(response.text).get("message") or "")
        except (TypeError, ValueError, AttributeError):
            message = ""
    return status, code, str(message)


def _said(error: Exception) -> str:
    """Twilio's answer, for the operator: status, code and message; never the exception's repr
    (twilio-python's carries the request's URL and colours)."""
    if isinstance(error, requests.RequestException):
        return f"Twilio could not be reached ({type(error).__name__})"
    status, code, message = _answer(error)
    answer = (
        f"HTTP {status}" + (f", code {code}" if code else "") + (f": {message}" if message else "")
    )
    if _refused(error):
        return f"Twilio refused them ({answer})"
    return f"Twilio answered {answer}"


# -- the webhook: a signed test receipt, answered and stored --------------------------------------


def _webhook(
    stack: Stack, credentials: TwilioCredentials | None, url: str | None, now: datetime
) -> list[Check]:
    if credentials is None:
        return [skipped(name, "it is signed with the secret") for name in (ANSWERS, VERIFIES)] + [
            skipped(STORED, "nothing was posted")
        ]
    try:
        receipt = signed_receipt(stack, credentials, status="delivered", at=now, url=url)
        answer = receipt.post()
    except CommandError as error:
        return [
            failed(ANSWERS, str(error), FIX_URL),
            skipped(VERIFIES, "no answer"),
            skipped(STORED, "no answer"),
        ]
    status = answer.status_code
    said = f"HTTP {status} from {receipt.target}"
    body = answer.text.strip()[:200]
    if status == 200:
        return [
            passed(
                ANSWERS,
                f"{said} to a delivered receipt of a made-up message, {receipt.message} "
                "(a delivered receipt queues no retry)",
            ),
            passed(
                VERIFIES,
                f"ingest accepted the signature made with the secret's auth_token over "
                f"{receipt.signed}",
            ),
            _stored(stack, receipt.message, receipt.receipt),
        ]
    if status == 403:
        return [
            passed(ANSWERS, f"{said}: ingest judged the signature (next line)"),
            failed(
                VERIFIES,
                f"ingest refused the signature made with the secret's auth_token over "
                f"{receipt.signed}: the secret's auth token does not match what ingest verifies "
                "with (its containers keep the secret up to 5 minutes: was it just changed?), "
                "or ingest checks another URL (behind a custom domain: WebhookBaseUrl)",
                "run again in 5 minutes; if it persists, check the secret (README: Deploy, "
                "step 1) and WebhookBaseUrl (README: Parameters)",
            ),
            skipped(STORED, "ingest refused the receipt: nothing was stored"),
        ]
    if status == 400:  # ingest checks the signature first: this one verified
        return [
            failed(
                ANSWERS,
                f"{said}: ingest refused the receipt as malformed ({body})",
                "the deployed functions may be older than this command: `make deploy`",
            ),
            passed(VERIFIES, "ingest accepted the signature (it checks it before the fields)"),
            skipped(STORED, "ingest refused the receipt: nothing was stored"),
        ]
    if status == 429:
        fix = "the webhook route's throttle: README: Operations, Webhook throttle"
    elif status >= 500:
        fix = "IngestFunction's logs and errors (README: Operations, Alarms: IngestFaultsAlarm)"
    else:  # 404: nothing routes that path there; a 3xx: not the API's URL
        fix = FIX_URL
    return [
        failed(ANSWERS, f"{said}{': ' + body if body else ''}", fix),
        skipped(VERIFIES, "ingest did not judge the signature"),
        skipped(STORED, "ingest did not take the receipt"),
    ]


def _stored(stack: Stack, message: str, receipt: str) -> Check:
    """The test receipt read back from the table: consistent, so what ingest wrote is seen."""
    try:
        table = stack.output("ReceiptsTableName")
        item = (
            boto3.client("dynamodb")
            .get_item(TableName=table, Key=receipt_key(message, receipt), ConsistentRead=True)
            .get("Item")
        )
    except (CommandError, ClientError, BotoCoreError) as error:
        return failed(STORED, f"the table could not be read: {error}", "`redeliver status`")
    if not item:
        return failed(
            STORED,
            f"ingest answered 200, but {table} holds no receipt {receipt} of {message} "
            "(consistent read): ingest answers 200 when it spills a receipt it could not write "
            "onto SpillQueue",
            "`redeliver status` shows SpillQueue; check the table's health and IngestFunction's "
            "logs (README: Operations, Reconciliation and spill)",
        )
    expires = item.get("expires_at", {}).get("N")
    until = (
        f"its TTL, {iso(datetime.fromtimestamp(int(expires), UTC))} (ReceiptRetentionDays "
        f"{stack.retention_days})"
        if expires
        else "its TTL"
    )
    return passed(
        STORED,
        f"receipt {receipt} of {message} read back from {table} (consistent GetItem), status "
        f"{item.get('status', {}).get('S')}; the test receipt stays in the table until {until}",
    )


# -- the alarms -----------------------------------------------------------------------------------


def _alarms(stack: Stack) -> Check:
    try:
        expected = template_alarms(stack)
        listed = stack_alarm_names(stack)
    except (ClientError, BotoCoreError) as error:
        return failed(ALARMS, f"the stack's template or resources: {error}", FIX_TWILIO)
    created = [name for name in expected if name in listed]
    off = {name: c for name, c in expected.items() if name not in listed and c}
    absent = [name for name, c in expected.items() if name not in listed and not c]
    if not created and _moto(stack):
        return skipped(
            ALARMS,
            "this check cannot run offline: moto's CloudFormation creates no "
            f"{ALARM} (it skips each with a warning), so this stack has none of its template's "
            f"{len(expected)}; against a deployed stack each is looked up in CloudWatch",
        )
    existing = _existing_alarms([listed[name] for name in created])
    missing = [f"{name} ({listed[name]})" for name in created if listed[name] not in existing]
    missing += [f"{name} (not among the stack's resources)" for name in absent]
    off_said = (
        f"; {len(off)} off by their condition: "
        + ", ".join(f"{name} ({condition})" for name, condition in off.items())
        if off
        else ""
    )
    if missing:
        return failed(
            ALARMS,
            f"{len(missing)} of {len(expected) - len(off)} missing from CloudWatch: "
            f"{', '.join(missing)}{off_said}",
            "CloudFormation does not notice an alarm deleted outside it: `aws cloudformation "
            f"detect-stack-drift --stack-name {stack.name}` shows it; re-create it from "
            "template.yaml (README: Operations, Alarms says what each watches)",
        )
    return passed(
        ALARMS, f"all {len(created)} of the template's alarms are in CloudWatch{off_said}"
    )


def template_alarms(stack: Stack) -> dict[str, str]:
    """Each alarm of the stack's own template (as deployed, SAM transformed): its logical id and
    its Condition ("" when it has none)."""
    body: Any = (
        boto3.client("cloudformation")
        .get_template(StackName=stack.name, TemplateStage="Processed")
        .get("TemplateBody", {})
    )
    if isinstance(body, str):  # botocore decodes a JSON template; the processed one is JSON
        body = json.loads(body)
    return {
        name: str(resource.get("Condition", ""))
        for name, resource in body.get("Resources", {}).items()
        if resource.get("Type") == ALARM
    }


def stack_alarm_names(stack: Stack) -> dict[str, str]:
    """The stack's alarms by logical id: the name CloudFormation gave each (its physical id)."""
    pages = boto3.client("cloudformation").get_paginator("list_stack_resources")
    return {
        resource["LogicalResourceId"]: resource["PhysicalResourceId"]
        for page in pages.paginate(StackName=stack.name)
        for resource in page["StackResourceSummaries"]
        if resource["ResourceType"] == ALARM
        and resource.get("PhysicalResourceId")
        and resource.get("ResourceStatus") != "DELETE_COMPLETE"
    }


def _existing_alarms(names: Sequence[str]) -> set[str]:
    cloudwatch = boto3.client("cloudwatch")
    found: set[str] = set()
    for start in range(0, len(names), DESCRIBED_AT_ONCE):
        chunk = list(names[start : start + DESCRIBED_AT_ONCE])
        for page in cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmNames=chunk, AlarmTypes=["MetricAlarm", "CompositeAlarm"]
        ):
            found |= {a["AlarmName"] for a in page.get("MetricAlarms", [])}
            found |= {a["AlarmName"] for a in page.get("CompositeAlarms", [])}
    return found


def _moto(stack: Stack) -> bool:
    """The stack is moto's (offline): CloudWatch is asked on loopback (`make serve`), or the
    stack's WebhookUrl output is left unresolved, as only moto's CloudFormation leaves it (it
    creates no HTTP API either). Where moto and AWS differ: AWS creates every alarm of the
    template whose Condition holds, and lists each among the stack's resources."""
    return is_loopback(os.environ.get("AWS_ENDPOINT_URL", "")) or "${" in stack.outputs.get(
        "WebhookUrl", ""
    )


# -- the Conversation Services' webhooks ----------------------------------------------------------


def _webhooks(
    stack: Stack, client: Client | None, url: str | None, services: Sequence[str]
) -> list[Check]:
    if client is None:
        return [skipped(WEBHOOKS, "Twilio is asked with the secret's credentials")]
    try:
        target = url_to_sign(stack, url)
    except CommandError as error:
        return [failed(WEBHOOKS, str(error), FIX_URL)]
    with_url = f"--url {url}; " if url else ""
    events = (DELIVERY_EVENT, MESSAGE_ADDED_EVENT) if tracks_messages(stack) else (DELIVERY_EVENT,)
    if services:
        return [_service(client, service, target, with_url, events) for service in services]
    try:
        listed = [s.sid for s in client.conversations.v1.services.list(limit=SERVICES_LISTED)]
        configured = {s: _configuration(client, s) for s in listed}
    except (TwilioException, requests.RequestException) as error:
        return [
            failed(WEBHOOKS, f"the account's Conversation Services: {_said(error)}", FIX_TWILIO)
        ]
    here = [s for s, config in configured.items() if config.post_webhook_url == target]
    elsewhere = [
        f"{s} ({config.post_webhook_url or 'no post-event webhook'})"
        for s, config in configured.items()
        if s not in here
    ]
    if not here:
        return [
            failed(
                WEBHOOKS,
                f"none of the account's {len(listed)} Conversation Service(s) posts its webhooks "
                f"to {target}: {', '.join(elsewhere) or 'the account has none'}",
                FIX_CONFIGURE.format(with_url)
                + "; then name it here with --service, so that it is held to it",
            )
        ]
    checks = [_judged(s, configured[s], target, with_url, events) for s in here]
    if elsewhere:
        checks.append(
            skipped(
                "the account's other services",
                f"{len(elsewhere)} post elsewhere, not checked: {', '.join(elsewhere)} (name one "
                "with --service to hold it to this stack)",
            )
        )
    return checks


def _configuration(client: Client, service: str) -> Any:
    return client.conversations.v1.services(service).configuration.webhooks().fetch()


def _service(
    client: Client,
    service: str,
    target: str,
    with_url: str,
    events: Sequence[str] = (DELIVERY_EVENT,),
) -> Check:
    try:
        config = _configuration(client, service)
    except (TwilioException, requests.RequestException) as error:
        if _answer(error)[0] == 404:
            return failed(
                f"Conversation Service {service}",
                f"Twilio knows no such service in the secret's account ({_said(error)}): "
                "another account's, or a typo?",
                "name a service of the secret's account (Twilio Console: Conversations, Services)",
            )
        return failed(f"Conversation Service {service}", _said(error), FIX_TWILIO)
    return _judged(service, config, target, with_url, events)


def _judged(
    service: str,
    config: Any,
    target: str,
    with_url: str,
    events: Sequence[str] = (DELIVERY_EVENT,),
) -> Check:
    name = f"Conversation Service {service}"
    method = str(config.method or "").upper()
    filters = list(config.filters or [])
    wrong = []
    if config.post_webhook_url != target:
        wrong.append(
            f"its post-event webhook is {config.post_webhook_url or 'unset'}, not {target}"
        )
    for event in events:  # onMessageAdded too with TrackMessages
        if event not in filters:
            wrong.append(f"{event} is not among its filters {filters}")
    if method != "POST":
        wrong.append(f"its method is {config.method}: ingest takes POST only")
    if wrong:
        switch = "--switch-to-post; " if method != "POST" else ""
        return failed(
            name,
            "; ".join(wrong),
            f"`redeliver configure-webhook {service}` ({with_url}{switch}--dry-run shows the "
            "change first; README: Deploy, step 3)",
        )
    return passed(name, f"posts {' and '.join(events)} to {target} (POST)")
