"""IngestFunction against the template deployed into moto (DESIGN invariants 1, 2, 3, 4, 7)."""

from __future__ import annotations

import base64
import json
import logging
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings

from redeliver.adapters.dynamodb.receipts import HISTORY_PREFIX
from tests.integration.conftest import WorkerLog
from tests.integration.resources import Resources
from tests.lambdas import invoke, load_function, metric_names
from tests.unit.dates import date_texts
from tools.apigw import DEFAULT_DOMAIN, ROUTE_PATH, http_api_event
from tools.samples import receipt_fields, sid
from tools.stack import TEST_AUTH_TOKEN, DeployedStack, create_twilio_secret, deploy


@pytest.fixture
def logged(worker_log: WorkerLog) -> list[logging.LogRecord]:
    """The package logger's records, at INFO whatever ran before (tests.integration.conftest)."""
    return worker_log.records


def post(ingest: ModuleType, fields: dict[str, str], **options: Any) -> dict[str, Any]:
    options.setdefault("token", TEST_AUTH_TOKEN)
    response: dict[str, Any] = invoke(ingest, http_api_event(fields, **options))
    return response


def stored(resources: Resources, fields: dict[str, str]) -> dict[str, Any]:
    [item] = [
        i
        for i in resources.items()
        if i["sk"]["S"] == "RCPT#" + fields["DeliveryReceiptSid"]
        and i["pk"]["S"] == "MSG#" + fields["MessageSid"]
    ]
    return item


# -- the happy paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("base64_body", [True, False])
def test_signed_receipt_is_stored_and_answered_200_empty(
    ingest: ModuleType,
    resources: Resources,
    base64_body: bool,
) -> None:
    fields = receipt_fields("delivered")
    response = post(ingest, fields, base64_body=base64_body)
    assert response["statusCode"] == 200
    assert response["body"] == ""
    item = stored(resources, fields)
    assert item["status"] == {"S": "delivered"}
    assert item["conversation_sid"] == {"S": fields["ConversationSid"]}
    assert "retry_pending_at" not in item
    assert resources.queued() == []


def test_failure_is_stored_and_queued_once_with_what_the_worker_needs(
    ingest: ModuleType,
    resources: Resources,
) -> None:
    fields = receipt_fields("undelivered", error_code=30003)
    assert post(ingest, fields)["statusCode"] == 200
    assert post(ingest, fields)["statusCode"] == 200  # Twilio sent it twice
    [job] = resources.queued()
    assert job["v"] == 1
    assert job["event"]["message_sid"] == fields["MessageSid"]
    assert job["event"]["receipt_sid"] == fields["DeliveryReceiptSid"]
    assert job["event"]["conversation_sid"] == fields["ConversationSid"]
    assert job["event"]["status"] == "undelivered"
    assert job["event"]["error_code"] == 30003
    assert job["event"]["date_updated"] == "2026-11-27T10:00:00.000Z"
    assert "retry_pending_at" in stored(resources, fields)  # until the worker takes it


def test_out_of_order_events_keep_the_latest_and_the_whole_history(
    ingest: ModuleType,
    resources: Resources,
) -> None:
    read = receipt_fields("read", updated="2026-11-27T10:00:09Z")
    delivered = receipt_fields("delivered", updated="2026-11-27T10:00:05Z")
    sent = receipt_fields("sent", updated="2026-11-27T10:00:01Z")
    for fields in (read, sent, delivered, sent, read):
        assert post(ingest, fields)["statusCode"] == 200
    item = stored(resources, read)
    assert item["status"] == {"S": "read"}
    history = {
        k.removeprefix(HISTORY_PREFIX): v["M"]["at"]["S"]
        for k, v in item.items()
        if k.startswith(HISTORY_PREFIX)
    }
    assert history == {
        "read": "2026-11-27T10:00:09.000Z",
        "delivered": "2026-11-27T10:00:05.000Z",
        "sent": "2026-11-27T10:00:01.000Z",
    }


def test_a_late_failure_after_delivery_is_not_queued(
    ingest: ModuleType,
    resources: Resources,
) -> None:
    post(ingest, receipt_fields("delivered", updated="2026-11-27T10:00:05Z"))
    post(ingest, receipt_fields("failed", error_code=30008, updated="2026-11-27T10:00:01Z"))
    assert resources.queued() == []
    assert stored(resources, receipt_fields())["status"] == {"S": "delivered"}


def test_a_delivery_after_a_failure_clears_the_pending_mark(
    ingest: ModuleType,
    resources: Resources,
) -> None:
    post(ingest, receipt_fields("undelivered", error_code=30003, updated="2026-11-27T10:00:01Z"))
    post(ingest, receipt_fields("delivered", updated="2026-11-27T10:00:05Z"))
    assert "retry_pending_at" not in stored(resources, receipt_fields())


def test_a_status_the_spec_does_not_name_is_kept_in_history_and_never_acted_on(
    ingest: ModuleType,
    resources: Resources,
    logged: list[logging.LogRecord],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Twilio's spec names five statuses. Another one (a new status, or a bug) is signed and
    Twilio will not send it again: kept (200, in the receipt's history), counted and logged, but
    neither a success nor a failure. As the receipt's status, a later one used to take a stored
    failure out of the outbox (a lost SQS send was never swept) and supersede its retry."""
    fields = receipt_fields("delivered_to_carrier", updated="2026-11-27T10:00:00Z")
    response = post(ingest, fields)
    assert response["statusCode"] == 200
    item = stored(resources, fields)
    assert "status" not in item
    assert item[HISTORY_PREFIX + "delivered_to_carrier"]["M"]["at"] == {
        "S": "2026-11-27T10:00:00.000Z"
    }
    assert resources.queued() == []

    failure = receipt_fields("undelivered", error_code=30003, updated="2026-11-27T10:00:01Z")
    assert post(ingest, failure)["statusCode"] == 200
    capsys.readouterr()
    later = receipt_fields("exploded", updated="2026-11-27T10:00:05Z")
    assert post(ingest, later)["statusCode"] == 200
    assert "UnknownStatus" in metric_names(capsys.readouterr().out)
    item = stored(resources, failure)
    assert item["status"] == {"S": "undelivered"}
    assert "retry_pending_at" in item  # still in the outbox
    assert {HISTORY_PREFIX + s for s in ("delivered_to_carrier", "undelivered", "exploded")} <= set(
        item
    )
    assert len(resources.queued()) == 1  # the failure, once
    assert any("does not name" in r.getMessage() for r in logged)


def test_signed_event_of_another_type_is_acknowledged_and_ignored(
    ingest: ModuleType,
    resources: Resources,
) -> None:
    fields = receipt_fields("sent")
    fields["EventType"] = "onMessageAdded"
    assert post(ingest, fields)["statusCode"] == 200
    assert resources.items() == []


@pytest.mark.parametrize(
    "channel_message_sid",
    ["WA" + "0123456789abcdef" * 2, "wa" + "f" * 32, "MM" + "A" * 32],  # the spec's pattern
)
def test_any_channel_message_sid_the_spec_allows_is_stored(
    ingest: ModuleType,
    resources: Resources,
    channel_message_sid: str,
) -> None:
    fields = receipt_fields("failed", error_code=30003)
    fields["ChannelMessageSid"] = channel_message_sid
    assert post(ingest, fields)["statusCode"] == 200
    assert stored(resources, fields)["channel_message_sid"] == {"S": channel_message_sid}
    assert len(resources.queued()) == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ChannelMessageSid", "SM" + "z" * 32),
        ("ChannelMessageSid", "not a sid"),
        ("AccountSid", "AC1"),
        ("ChatServiceSid", "IS../../Services"),
        ("ParticipantSid", "MB" + "0" * 31),
    ],
)
def test_a_malformed_optional_field_is_dropped_counted_and_logged_not_a_400(
    *,
    ingest: ModuleType,
    resources: Resources,
    capsys: pytest.CaptureFixture[str],
    logged: list[logging.LogRecord],
    name: str,
    value: str,
) -> None:
    fields = receipt_fields("failed", error_code=30003)
    fields[name] = value
    assert post(ingest, fields)["statusCode"] == 200
    item = stored(resources, fields)
    assert item["status"] == {"S": "failed"}
    assert value not in json.dumps(item)
    [job] = resources.queued()  # the failure is still retried
    assert job["event"]["message_sid"] == fields["MessageSid"]
    assert "DroppedReceiptFields" in metric_names(capsys.readouterr().out)
    [record] = [r for r in logged if r.getMessage() == "optional field(s) dropped"]
    assert vars(record)["dropped"] == [name]
    assert vars(record)["message_sid"] == fields["MessageSid"]


def test_a_malformed_error_code_on_a_delivery_is_dropped_not_a_400(
    ingest: ModuleType,
    resources: Resources,
) -> None:
    post(ingest, receipt_fields("failed", error_code=30003, updated="2026-11-27T10:00:00Z"))
    delivered = receipt_fields("delivered", updated="2026-11-27T10:00:05Z")
    delivered["ErrorCode"] = "n/a"
    assert post(ingest, delivered)["statusCode"] == 200
    item = stored(resources, delivered)
    assert item["status"] == {"S": "delivered"}  # the delivery that stops a resend is kept
    assert "error_code" not in item
    assert "retry_pending_at" not in item


# -- the signature: checked first, nothing unsigned is stored ----------------------------------


@pytest.mark.parametrize(
    ("case", "options"),
    [
        ("no signature header", {"token": None}),
        (
            "forged signature",
            {"token": None, "headers": {"x-twilio-signature": "bm90IGEgc2lnbmF0dXJl"}},
        ),
        ("signed with another token", {"token": "someone-elses-token"}),
        ("signed for http://", {"signed_url": f"http://{DEFAULT_DOMAIN}{ROUTE_PATH}"}),
        ("signed for another path", {"signed_url": f"https://{DEFAULT_DOMAIN}/other"}),
        (
            "signed without the query string",
            {"query": "tenant=a", "signed_url": f"https://{DEFAULT_DOMAIN}{ROUTE_PATH}"},
        ),
        ("body not base64", {"body": "%%%not-base64%%%", "base64_body": True}),
        ("too many fields", {"body": "&".join(f"f{i}=v" for i in range(500))}),
        (
            "unsupported algorithm",
            {"headers": {"x-twilio-webhooks-signature-settings": "algorithm=HMAC_MD5"}},
        ),
        (
            "unknown shared key",
            {"headers": {"x-twilio-webhooks-signature-settings": "key=nope,algorithm=HMAC_SHA256"}},
        ),
    ],
)
def test_unverifiable_requests_get_403_and_leave_no_trace(
    ingest: ModuleType,
    resources: Resources,
    capsys: pytest.CaptureFixture[str],
    case: str,
    options: dict[str, Any],
) -> None:
    fields = receipt_fields("failed", error_code=30005)
    if options.get("body") == "%%%not-base64%%%":
        event = http_api_event(fields, token=TEST_AUTH_TOKEN)
        event["body"] = "%%%not-base64%%%"
        response = invoke(ingest, event)
    else:
        response = post(ingest, fields, **options)
    assert response["statusCode"] == 403, case
    assert resources.items() == []
    assert resources.queued() == []
    assert "SignatureRejected" in metric_names(capsys.readouterr().out)


def test_non_utf8_body_is_403(ingest: ModuleType, resources: Resources) -> None:
    event = http_api_event(receipt_fields(), token=TEST_AUTH_TOKEN)
    event["body"] = base64.b64encode(b"Status=\xff\xfe").decode()
    assert invoke(ingest, event)["statusCode"] == 403
    assert resources.items() == []


@pytest.mark.parametrize("body", ["Status=\ud800", "\udcff", "MessageSid=IM\ud83d"])
def test_a_plain_body_that_is_not_unicode_text_is_403_not_500(
    ingest: ModuleType, resources: Resources, body: str
) -> None:
    """A lone surrogate cannot be UTF-8 encoded, so nothing Twilio signed holds one; hashing it
    for the signature raised UnicodeEncodeError: a forged request answered 500 (and raised the
    IngestFaults alarm)."""
    event = http_api_event(receipt_fields(), token=TEST_AUTH_TOKEN, base64_body=False)
    event["body"] = body
    assert invoke(ingest, event)["statusCode"] == 403
    assert resources.items() == []


def test_signed_query_string_is_part_of_the_url(ingest: ModuleType, resources: Resources) -> None:
    fields = receipt_fields("sent")
    assert post(ingest, fields, query="tenant=a&x=1")["statusCode"] == 200
    assert len(resources.items()) == 1


def test_header_names_are_matched_whatever_their_case(
    ingest: ModuleType,
    resources: Resources,
) -> None:
    fields = receipt_fields("sent")
    event = http_api_event(fields, token=TEST_AUTH_TOKEN)
    event["headers"]["X-Twilio-Signature"] = event["headers"].pop("x-twilio-signature")
    assert invoke(ingest, event)["statusCode"] == 200


def test_blank_fields_are_kept_for_the_signature(ingest: ModuleType, resources: Resources) -> None:
    fields = receipt_fields("sent")
    assert fields["ClientIdentity"] == ""  # signed, blank: dropping it would break the signature
    assert post(ingest, fields)["statusCode"] == 200


# -- signed but malformed: 400 naming the problem, nothing stored ------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"MessageSid": ""}, "missing field(s): MessageSid"),
        ({"DeliveryReceiptSid": None}, "missing field(s): DeliveryReceiptSid"),
        ({"Status": None, "ConversationSid": None}, "missing field(s): ConversationSid, Status"),
        ({"DateUpdated": "last tuesday"}, "DateUpdated is not an ISO 8601 date"),
        ({"DateUpdated": "9999-12-31T23:59:59-01:00"}, "DateUpdated is out of range"),
        ({"DateCreated": "0001-01-01T00:00:00+01:00"}, "DateCreated is out of range"),
        ({"DateUpdated": "9999-12-31T23:59:59Z"}, "DateUpdated is out of range"),
        ({"DateUpdated": None, "DateCreated": None}, "missing field(s): DateUpdated"),
        ({"ErrorCode": "30003x"}, "ErrorCode is not an integer"),
        ({"MessageSid": "IM-not-a-sid"}, "MessageSid is not a IM"),
        ({"Padding": "x" * 20_000}, "body is over 16384 bytes"),
    ],
)
def test_signed_but_malformed_is_400_with_the_reason(
    ingest: ModuleType,
    resources: Resources,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str | None],
    reason: str,
) -> None:
    fields = receipt_fields("failed", error_code=30005)
    for name, value in change.items():
        if value is None:
            del fields[name]
        else:
            fields[name] = value
    response = post(ingest, fields)
    assert response["statusCode"] == 400
    assert reason in response["body"]
    assert resources.items() == []
    assert resources.queued() == []
    assert "BadRequests" in metric_names(capsys.readouterr().out)


def test_the_whole_bad_input_matrix_never_answers_5xx(
    ingest: ModuleType,
    resources: Resources,
) -> None:
    fields = receipt_fields("failed", error_code=30005)
    bodies = [
        "",
        "=",
        "&&&",
        "a=%ZZ",
        "Status",
        "\x00",
        "MessageSid=" + "I" * 5000,
        json.dumps(fields),
        "EventType=onDeliveryUpdated&" * 50,
    ]
    statuses = set()
    for body in bodies:
        for token in (TEST_AUTH_TOKEN, None):
            for base64_body in (True, False):
                event = http_api_event(
                    dict(_pairs(body)), token=token, body=body, base64_body=base64_body
                )
                statuses.add(invoke(ingest, event)["statusCode"])
    assert statuses <= {400, 403}, statuses
    assert resources.items() == []


@settings(
    max_examples=150,
    deadline=None,
    # One stack for every example: each receipt is its own message, so none sees another's item.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(updated=date_texts(), created=date_texts())
def test_any_signed_date_is_200_or_400_naming_the_field_never_500(
    ingest: ModuleType,
    resources: Resources,
    updated: str,
    created: str,
) -> None:
    message = f"{updated!r}{created!r}"
    fields = receipt_fields("failed", message=message, error_code=30003)
    fields.update(DateUpdated=updated, DateCreated=created)
    response = post(ingest, fields)
    assert response["statusCode"] in (200, 400), response
    if response["statusCode"] == 400:
        assert "DateUpdated" in response["body"] or "DateCreated" in response["body"]
    else:
        assert stored(resources, fields)["status"] == {"S": "failed"}


def _pairs(body: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    try:
        return parse_qsl(body, keep_blank_values=True)
    except ValueError:
        return []


# -- faults: only an AWS fault is a 5xx, and it is counted ------------------------------------


def test_table_and_spill_queue_fault_is_500_and_counted(
    ingest: ModuleType,
    resources: Resources,
    stack: DeployedStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the table gone the receipt is spilled (200, tests/integration/test_spill.py); with
    the spill queue gone as well it is a 500, alarmed."""
    boto3.client("dynamodb").delete_table(TableName=resources.table)
    assert post(ingest, receipt_fields("sent"))["statusCode"] == 200
    boto3.client("sqs").delete_queue(QueueUrl=stack.outputs["SpillQueueUrl"])
    assert post(ingest, receipt_fields("sent"))["statusCode"] == 500
    assert "IngestFaults" in metric_names(capsys.readouterr().out)


def conflicting(ingest: ModuleType, monkeypatch: pytest.MonkeyPatch, times: int) -> list[str]:
    """The receipt's UpdateItem meets the retry worker's claim transaction `times` times.

    DynamoDB rejects a single-item write to an item that an ongoing TransactWriteItems includes
    (the claim's ConditionCheck on the receipt) with TransactionConflictException, which botocore
    does not retry. moto serves one request at a time, so it never does: the error is injected.
    """
    client = ingest.ingest.recorder._receipts._db
    real = client.update_item
    calls: list[str] = []

    def update_item(**kwargs: Any) -> Any:
        calls.append("UpdateItem")
        if len(calls) <= times:
            raise ClientError(
                {"Error": {"Code": "TransactionConflictException", "Message": "in a transaction"}},
                "UpdateItem",
            )
        return real(**kwargs)

    monkeypatch.setattr(client, "update_item", update_item)
    return calls


def test_a_write_that_meets_a_claim_transaction_is_tried_again_not_500(
    ingest: ModuleType,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The delivery that lands while the worker claims is the one that must not be lost (Twilio
    does not resend it): without it the claimed resend goes ahead."""
    post(ingest, receipt_fields("failed", error_code=30003, updated="2026-11-27T10:00:00Z"))
    calls = conflicting(ingest, monkeypatch, times=2)
    delivered = receipt_fields("delivered", updated="2026-11-27T10:00:05Z")
    assert post(ingest, delivered)["statusCode"] == 200
    assert calls == ["UpdateItem"] * 3
    assert stored(resources, delivered)["status"] == {"S": "delivered"}


def test_a_write_that_keeps_conflicting_is_spilled_after_a_bounded_number_of_tries(
    ingest: ModuleType,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls = conflicting(ingest, monkeypatch, times=100)
    assert post(ingest, receipt_fields("sent"))["statusCode"] == 200  # spilled, not a 500
    assert len(calls) == 3  # bounded: Twilio gives the webhook 5 seconds
    assert "SpilledReceipts" in metric_names(capsys.readouterr().out)


def test_queue_fault_after_the_write_is_200_and_left_to_the_sweeper(
    stack: DeployedStack,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    environment = {
        **stack.environment("IngestFunction"),
        "RETRY_QUEUE_URL": resources.queue_url + "-gone",
    }
    ingest = load_function("ingest", environment, monkeypatch)
    fields = receipt_fields("failed", error_code=30005)
    assert post(ingest, fields)["statusCode"] == 200
    assert "EnqueueDeferred" in metric_names(capsys.readouterr().out)
    assert "retry_pending_at" in stored(resources, fields)
    assert resources.queued() == []


def test_a_crash_between_write_and_enqueue_is_recovered_by_the_sweeper(
    stack: DeployedStack,
    ingest: ModuleType,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DESIGN invariant 4 at ingest: the process dies after the write; the failure survives."""

    class Crash(BaseException):
        pass

    def die(*_: object, **__: object) -> None:
        raise Crash

    monkeypatch.setattr(ingest.ingest._queue, "send", die)
    fields = receipt_fields("undelivered", error_code=30003)
    with pytest.raises(Crash):
        post(ingest, fields)
    assert resources.queued() == []

    environment = {**stack.environment("SweepFunction"), "SWEEP_GRACE_SECONDS": "0"}
    sweeper = load_function("sweep", environment, monkeypatch)
    assert invoke(sweeper, {})["swept"] == 1
    [job] = resources.queued()
    assert job["event"]["message_sid"] == fields["MessageSid"]
    assert job["event"]["status"] == "undelivered"
    # Re-queued once per grace period, not on every run.
    assert (
        invoke(load_function("sweep", stack.environment("SweepFunction"), monkeypatch), {})["swept"]
        == 0
    )


# -- secrets: rotation, shared keys, custom domains --------------------------------------------


def test_rotated_token_is_picked_up_with_one_refresh(
    stack: DeployedStack,
    ingest: ModuleType,
    resources: Resources,
) -> None:
    assert post(ingest, receipt_fields("sent"))["statusCode"] == 200  # caches the old token
    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack.environment("IngestFunction")["TWILIO_SECRET_ARN"],
        SecretString=json.dumps({"account_sid": sid("AC", "account"), "auth_token": "rotated"}),
    )
    assert (
        post(ingest, receipt_fields("delivered", updated="2026-11-27T10:00:03Z"), token="rotated")[
            "statusCode"
        ]
        == 200
    )
    assert post(ingest, receipt_fields("read", updated="2026-11-27T10:00:04Z"))["statusCode"] == 403


def test_forged_requests_do_not_hammer_secrets_manager(ingest: ModuleType) -> None:
    calls: list[str] = []
    client = ingest.ingest._verifier._credentials._provider.client  # ingest's bounded one
    client.meta.events.register(
        "before-call.secrets-manager.*", lambda model, **_: calls.append(model.name)
    )
    for _ in range(20):
        assert post(ingest, receipt_fields("sent"), token="wrong")["statusCode"] == 403
    assert calls == ["GetSecretValue", "GetSecretValue"]  # first read, one forced refresh


def secrets_manager_down(calls: list[str], function: ModuleType | None = None) -> Any:
    """Every GetSecretValue fails from now on, as in an outage (no connection), counted in
    `calls`, and the cached secret has expired (max_age): on the client of ingest's own provider
    (`function`), else on Powertools' default provider's (the retry and reconcile functions').
    moto has no way to make Secrets Manager fail."""
    from aws_lambda_powertools.utilities import parameters
    from botocore.exceptions import EndpointConnectionError

    def outage(model: Any, **_: Any) -> None:
        calls.append(model.name)
        raise EndpointConnectionError(endpoint_url="https://secretsmanager.us-east-1.amazonaws.com")

    provider = function.ingest._verifier._credentials._provider if function else None
    if provider is None:
        parameters.clear_caches()  # drops the default providers too
        provider = parameters.SecretsProvider(boto3_client=boto3.client("secretsmanager"))
        parameters.base.DEFAULT_PROVIDERS["secrets"] = provider
    provider.clear_cache()
    provider.client.meta.events.register("before-call.secrets-manager.GetSecretValue", outage)
    return provider.client


def test_a_secrets_manager_outage_keeps_the_last_good_token_for_signed_webhooks(
    ingest: ModuleType,
    resources: Resources,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Twilio does not resend a webhook answered 500: while Secrets Manager is down, the last
    token read is used (counted StaleCredentials, alarmed), a forgery is still 403, and Secrets
    Manager is asked again only now and then, not on every request."""
    assert post(ingest, receipt_fields("sent"))["statusCode"] == 200  # reads the token
    calls: list[str] = []
    secrets_manager_down(calls, ingest)
    capsys.readouterr()
    delivered = receipt_fields("delivered", updated="2026-11-27T10:00:03Z")
    assert post(ingest, delivered)["statusCode"] == 200
    assert stored(resources, delivered)["status"] == {"S": "delivered"}
    for _ in range(5):
        assert post(ingest, receipt_fields("read"), token="forged")["statusCode"] == 403
    assert post(ingest, receipt_fields("read", updated="2026-11-27T10:00:04Z"))["statusCode"] == 200
    assert calls == ["GetSecretValue"]  # refreshed later, not per request
    printed = metric_names(capsys.readouterr().out)
    assert (
        printed.count("StaleCredentials") == 8
    )  # each request, and the one re-read a forgery spent
    assert "IngestFaults" not in printed


def test_stale_credentials_are_kept_only_for_a_bounded_time(
    stack: DeployedStack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past STALE_CREDENTIALS_MAX_HOURS since the last good read, a Secrets Manager fault is a fault
    again (500, alarmed): a token that old may have been rotated away."""
    ingest = load_function(
        "ingest",
        {**stack.environment("IngestFunction"), "STALE_CREDENTIALS_MAX_HOURS": "1"},
        monkeypatch,
    )
    source = ingest.ingest._verifier._credentials
    now = [1_000.0]
    source._clock = lambda: now[0]
    assert post(ingest, receipt_fields("sent"))["statusCode"] == 200
    secrets_manager_down([], ingest)
    now[0] += 3_000
    assert post(ingest, receipt_fields("delivered"))["statusCode"] == 200
    now[0] += 700  # over an hour after the last good read
    assert post(ingest, receipt_fields("read"))["statusCode"] == 500


def test_hmac_sha256_webhooks_are_checked_with_their_shared_key(
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arn = create_twilio_secret("shared/twilio", webhook_shared_keys={"key-1": "shared-secret"})
    stack = deploy("shared", {"TwilioSecretArn": arn})
    ingest = load_function("ingest", stack.environment("IngestFunction"), monkeypatch)
    fields = receipt_fields("sent")
    url = f"https://{DEFAULT_DOMAIN}{ROUTE_PATH}"
    from twilio.request_validator import RequestValidator

    signature = RequestValidator("shared-secret").compute_signature(url, fields, "HMAC_SHA256")
    settings = "key=key-1,algorithm=HMAC_SHA256"
    headers = {"x-twilio-signature": signature, "x-twilio-webhooks-signature-settings": settings}
    assert post(ingest, fields, token=None, headers=headers)["statusCode"] == 200
    headers["x-twilio-signature"] = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
        url, fields, "HMAC_SHA256"
    )
    assert post(ingest, fields, token=None, headers=headers)["statusCode"] == 403


def test_custom_domain_signatures_use_webhook_base_url(
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = deploy("custom", {"WebhookBaseUrl": "https://hooks.example.com/v1"})
    ingest = load_function("ingest", stack.environment("IngestFunction"), monkeypatch)
    public = f"https://hooks.example.com/v1{ROUTE_PATH}"
    assert post(ingest, receipt_fields("sent"), signed_url=public)["statusCode"] == 200
    assert post(ingest, receipt_fields("sent"))["statusCode"] == 403  # the execute-api URL
    # the URL the stack tells the operator to give Twilio is the one ingest checks
    assert stack.outputs["WebhookUrl"] == public
    fields = receipt_fields("sent", message="via-output")
    assert post(ingest, fields, signed_url=stack.outputs["WebhookUrl"])["statusCode"] == 200


# -- the hot path: AWS calls per receipt (DESIGN invariant 3) ----------------------------------


def count_calls(module: ModuleType) -> list[str]:
    calls: list[str] = []
    for client in (module.ingest.recorder._receipts._db, module.ingest._queue._sqs):
        client.meta.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
    return calls


def test_one_write_per_receipt_and_one_send_per_new_failure(
    ingest: ModuleType,
    resources: Resources,
) -> None:
    post(ingest, receipt_fields("sent", message="warm-up"))  # the secret is read once
    calls = count_calls(ingest)
    post(ingest, receipt_fields("sent", updated="2026-11-27T10:00:01Z"))
    assert calls == ["UpdateItem"]
    calls.clear()
    post(ingest, receipt_fields("delivered", updated="2026-11-27T10:00:02Z"))
    assert calls == ["UpdateItem"]
    calls.clear()
    post(ingest, receipt_fields("failed", message=2, error_code=30005))
    assert calls == ["UpdateItem", "SendMessage"]
    calls.clear()
    post(ingest, receipt_fields("failed", message=2, error_code=30005))  # duplicate
    assert calls == ["UpdateItem"]
