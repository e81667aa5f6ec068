"""The Twilio simulator against Twilio's own description of the API, and the gateway against both.

Contract: the simulator's real HTTP answers are validated against the response schemas of
`../shared/oai/twilio_conversations_v1.json` (twilio/twilio-oai; beside the clone in CI), with no
property outside the schema and dates twilio-python parses. Where the file is absent the contract
tests skip, saying so. The gateway tests run the real twilio-python client against the simulator:
the Conversation Service each call goes to, paging, Receipts, and which failures are
`transient` (nothing was sent) and which `ambiguous` (the create may have been stored).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from twilio.base import deserialize

from redeliver.adapters.twilio.client import make_client
from redeliver.adapters.twilio.conversations import (
    ConversationsGateway,
    MarkerSearchInconclusive,
    TwilioError,
)
from redeliver.adapters.twilio.credentials import CredentialSource, TwilioCredentials
from redeliver.domain.chain import NewMessage
from tools.stack import ROOT
from tools.twilio_sim.faults import Fault, FaultRates
from tools.twilio_sim.simulator import TwilioSimulator, running
from tools.twilio_sim.wire import TWILIO_URL

SPEC_NAME = Path("shared/oai/twilio_conversations_v1.json")


def _spec_path() -> Path | None:
    """`../shared` beside the clone; from a git worktree, beside the main checkout."""
    candidates = [ROOT.parent / SPEC_NAME]
    git = ROOT / ".git"
    if git.is_file():  # a worktree: "gitdir: <main>/.git/worktrees/<name>"
        gitdir = Path(git.read_text().split(":", 1)[1].strip())
        candidates.append(gitdir.parents[2].parent / SPEC_NAME)
    return next((path for path in candidates if path.is_file()), None)


@cache
def _spec() -> dict[str, Any]:
    path = _spec_path()
    if path is None:
        pytest.skip(f"Twilio's OpenAPI spec is not at ../{SPEC_NAME} beside the repository")
    spec: dict[str, Any] = json.loads(path.read_text())
    return spec


def response_schema(path: str, method: str, status: str) -> dict[str, Any]:
    spec = _spec()
    content = spec["paths"][path][method]["responses"][status]["content"]
    schema: dict[str, Any] = content["application/json"]["schema"]
    return schema


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = _spec()["components"]["schemas"][name]
    return schema


def outside_schema(instance: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Every property in `instance` its schema does not name (the spec sets no
    additionalProperties, so a validator alone would let them through)."""
    schema = _resolve(schema)
    found: list[str] = []
    if isinstance(instance, dict) and "properties" in schema:
        for key, value in instance.items():
            if key not in schema["properties"]:
                found.append(f"{where}.{key}")
            else:
                found += outside_schema(value, schema["properties"][key], f"{where}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for n, item in enumerate(instance):
            found += outside_schema(item, schema["items"], f"{where}[{n}]")
    return found


def missing_from(instance: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Every schema property the instance lacks (Twilio sends them all, null when unset)."""
    schema = _resolve(schema)
    found: list[str] = []
    if isinstance(instance, dict) and "properties" in schema and where != "$.meta":
        found += [f"{where}.{key}" for key in schema["properties"] if key not in instance]
        for key, value in instance.items():
            if key in schema["properties"]:
                found += missing_from(value, schema["properties"][key], f"{where}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for n, item in enumerate(instance):
            found += missing_from(item, schema["items"], f"{where}[{n}]")
    return found


def dates(instance: Any, schema: dict[str, Any]) -> list[str]:
    schema = _resolve(schema)
    found: list[str] = []
    if schema.get("format") == "date-time" and isinstance(instance, str):
        found.append(instance)
    if isinstance(instance, dict) and "properties" in schema:
        for key, value in instance.items():
            if key in schema["properties"]:
                found += dates(value, schema["properties"][key])
    if isinstance(instance, list) and "items" in schema:
        for item in instance:
            found += dates(item, schema["items"])
    return found


def assert_conforms(body: Any, schema: dict[str, Any]) -> None:
    validator = OAS30Validator(
        {**schema, "components": _spec()["components"]}, format_checker=oas30_format_checker
    )
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert errors == []
    assert outside_schema(body, schema) == []
    assert missing_from(body, schema) == []
    for value in dates(body, schema):  # twilio-python parses this form only, else keeps the str
        assert isinstance(deserialize.iso8601_datetime(value), datetime), value


# -- the simulator, over HTTP --------------------------------------------------------------------


@pytest.fixture
def twilio(sim: TwilioSimulator) -> tuple[TwilioSimulator, str, str, str]:
    """A conversation in a second service, with one message and two recipients (+ one chat)."""
    service = sim.add_service("second")
    conversation = sim.add_conversation(recipients=2, chat_participants=1, service=service)
    message = sim.add_message(conversation, attributes={"order": 1})
    return sim, service, conversation, message


def get(sim: TwilioSimulator, path: str, **params: str) -> requests.Response:
    return requests.get(sim.url + path, params=params, timeout=5)


SERVICE = "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}"
SHORT = "/v1/Conversations/{ConversationSid}"


def test_a_message_and_its_lists_answer_as_the_spec_describes(
    twilio: tuple[TwilioSimulator, str, str, str],
) -> None:
    sim, service, conversation, message = twilio
    base = f"/v1/Services/{service}/Conversations/{conversation}"
    fetched = get(sim, f"{base}/Messages/{message}")
    assert fetched.status_code == 200
    assert_conforms(fetched.json(), response_schema(f"{SERVICE}/Messages/{{Sid}}", "get", "200"))
    assert fetched.json()["url"] == f"{TWILIO_URL}{base}/Messages/{message}"
    assert fetched.json()["links"] == {
        "delivery_receipts": f"{TWILIO_URL}{base}/Messages/{message}/Receipts",
        "channel_metadata": f"{TWILIO_URL}{base}/Messages/{message}/ChannelMetadata",
    }
    listed = get(sim, f"{base}/Messages", PageSize="7", Order="desc")
    assert_conforms(listed.json(), response_schema(f"{SERVICE}/Messages", "get", "200"))
    assert listed.json()["meta"]["page_size"] == 7
    participants = get(sim, f"{base}/Participants")
    assert_conforms(participants.json(), response_schema(f"{SERVICE}/Participants", "get", "200"))
    assert len(participants.json()["participants"]) == 3
    sim.set_receipt(message, "undelivered", 30003)
    receipts = get(sim, f"{base}/Messages/{message}/Receipts")
    path = f"{SERVICE}/Messages/{{MessageSid}}/Receipts"
    assert_conforms(receipts.json(), response_schema(path, "get", "200"))
    statuses = [(r["status"], r["error_code"]) for r in receipts.json()["delivery_receipts"]]
    assert statuses == [("undelivered", 30003), ("sent", 0)]


def test_the_short_path_answers_as_its_own_schema_for_the_default_service(
    sim: TwilioSimulator,
) -> None:
    conversation = sim.add_conversation()
    message = sim.add_message(conversation)
    base = f"/v1/Conversations/{conversation}"
    fetched = get(sim, f"{base}/Messages/{message}").json()
    assert_conforms(fetched, response_schema(f"{SHORT}/Messages/{{Sid}}", "get", "200"))
    assert "chat_service_sid" not in fetched  # the short schema has none
    assert (
        fetched["links"]["delivery_receipts"] == f"{TWILIO_URL}{base}/Messages/{message}/Receipts"
    )
    for path, route in (
        (f"{base}/Messages", f"{SHORT}/Messages"),
        (f"{base}/Participants", f"{SHORT}/Participants"),
        (f"{base}/Messages/{message}/Receipts", f"{SHORT}/Messages/{{MessageSid}}/Receipts"),
    ):
        assert_conforms(get(sim, path).json(), response_schema(route, "get", "200"))


def test_the_short_path_does_not_reach_another_service(
    twilio: tuple[TwilioSimulator, str, str, str],
) -> None:
    sim, _, conversation, message = twilio
    for path in (
        f"/v1/Conversations/{conversation}/Messages/{message}",
        f"/v1/Conversations/{conversation}/Messages",
        f"/v1/Conversations/{conversation}/Participants",
        f"/v1/Conversations/{conversation}/Messages/{message}/Receipts",
        f"/v1/Services/{sim.chat_service_sid}/Conversations/{conversation}/Messages",
    ):
        answer = get(sim, path)
        assert (answer.status_code, answer.json()["code"]) == (404, 20404), path


def test_a_create_and_the_webhook_configuration_answer_as_the_spec_describes(
    twilio: tuple[TwilioSimulator, str, str, str],
) -> None:
    sim, service, conversation, _ = twilio
    created = requests.post(
        f"{sim.url}/v1/Services/{service}/Conversations/{conversation}/Messages",
        data={"Body": "hi", "Attributes": "{}"},
        timeout=5,
    )
    assert created.status_code == 201
    assert_conforms(created.json(), response_schema(f"{SERVICE}/Messages", "post", "201"))
    hooks = "/v1/Services/{ChatServiceSid}/Configuration/Webhooks"
    path = f"/v1/Services/{service}/Configuration/Webhooks"
    assert_conforms(get(sim, path).json(), response_schema(hooks, "get", "200"))
    updated = requests.post(
        sim.url + path,
        data={"PostWebhookUrl": "https://example.com/hook", "Filters": ["onDeliveryUpdated"]},
        timeout=5,
    )
    assert_conforms(updated.json(), response_schema(hooks, "post", "200"))
    assert updated.json()["filters"] == ["onDeliveryUpdated"]


def test_the_services_list_answers_as_the_spec_describes_and_pages(sim: TwilioSimulator) -> None:
    """`GET /v1/Services`, the one call `redeliver smoke` makes to prove the credentials work
    (page size 1), read by the layer's own client, as the command reads it."""
    second = sim.add_service("second")
    listed = get(sim, "/v1/Services")
    assert listed.status_code == 200
    assert_conforms(listed.json(), response_schema("/v1/Services", "get", "200"))
    assert [s["sid"] for s in listed.json()["services"]] == [sim.chat_service_sid, second]
    first = get(sim, "/v1/Services", PageSize="1").json()
    assert [s["sid"] for s in first["services"]] == [sim.chat_service_sid]
    assert first["meta"]["next_page_url"].startswith(f"{TWILIO_URL}/v1/Services?")
    assert get(sim, "/v1/Services", PageSize="101").status_code == 400
    client = make_client(TwilioCredentials(sim.account_sid, "token"), 5, sim.url)
    assert [s.sid for s in client.conversations.v1.services.list(page_size=1)] == [
        sim.chat_service_sid,
        second,
    ]
    assert sim.requests[-2:] == [("GET", "/v1/Services"), ("GET", "/v1/Services")]


def test_an_error_answers_with_twilios_error_body(sim: TwilioSimulator) -> None:
    """The spec describes only successes; an error is the body twilio-python reads (code,
    message, more_info, status), nothing else."""
    answer = get(sim, "/v1/Conversations/CH" + "0" * 32 + "/Messages")
    assert answer.status_code == 404
    body = answer.json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert (body["code"], body["status"]) == (20404, 404)
    assert body["more_info"].startswith("https://www.twilio.com/docs/errors/")


def test_lists_page_through_next_page_url_and_page_size_is_bounded(sim: TwilioSimulator) -> None:
    conversation = sim.add_conversation()
    sent = [sim.add_message(conversation, f"m{n}") for n in range(5)]
    path = f"/v1/Conversations/{conversation}/Messages"
    seen: list[str] = []
    page = get(sim, path, PageSize="2", Order="desc").json()
    while True:
        seen += [m["sid"] for m in page["messages"]]
        assert page["meta"]["page_size"] == 2
        if page["meta"]["next_page_url"] is None:
            break
        assert page["meta"]["next_page_url"].startswith(TWILIO_URL)
        page = requests.get(
            page["meta"]["next_page_url"].replace(TWILIO_URL, sim.url), timeout=5
        ).json()
    assert seen == list(reversed(sent))
    assert get(sim, path, PageSize="101").status_code == 400


@pytest.mark.parametrize(
    "template", [f"{SHORT}/Messages", f"{SHORT}/Messages/{{MessageSid}}/Receipts"]
)
@pytest.mark.parametrize("scope", ["service", "short"])
def test_page_size_and_order_are_checked_as_the_spec_bounds_each_list(
    sim: TwilioSimulator, template: str, scope: str
) -> None:
    """Each list has its own bounds in the spec (Receipts: PageSize at most 50, not 100), and
    Order is an enum: Twilio answers 400 outside them, so a client the simulator lets through
    would fail against Twilio."""
    conversation = sim.add_conversation()
    message = sim.add_message(conversation)
    spec_path = template if scope == "short" else template.replace(SHORT, SERVICE)
    parameters = {p["name"]: p for p in _spec()["paths"][spec_path]["get"]["parameters"]}
    path = spec_path.format(
        ChatServiceSid=sim.service_of(conversation),
        ConversationSid=conversation,
        MessageSid=message,
    )
    most = parameters["PageSize"]["schema"]["maximum"]
    assert get(sim, path, PageSize=str(most)).status_code == 200
    assert get(sim, path, PageSize=str(most + 1)).status_code == 400
    if "Order" in parameters:
        ref = parameters["Order"]["schema"]["$ref"].rsplit("/", 1)[1]
        for order in _spec()["components"]["schemas"][ref]["enum"]:
            assert get(sim, path, Order=order).status_code == 200
        assert get(sim, path, Order="sideways").status_code == 400


# -- the gateway (real twilio-python) against the simulator --------------------------------------


class FixedCredentials(CredentialSource):
    def __init__(self, account_sid: str) -> None:
        super().__init__("arn:unused")
        self._credentials = TwilioCredentials(account_sid, "token")

    def get(self, refresh: bool = False) -> TwilioCredentials:
        return self._credentials


def gateway(sim: TwilioSimulator, timeout: float = 2.0, webhooks: bool = False) -> Any:
    return ConversationsGateway(FixedCredentials(sim.account_sid), sim.url, timeout, webhooks)


RESEND = NewMessage(
    author="system",
    body="again",
    attributes={"redeliver": {"root": "IM1", "attempt": 1}},
    media_sid=None,
    content_sid=None,
    content_variables=None,
)


def test_every_call_goes_to_the_conversation_service_given(
    twilio: tuple[TwilioSimulator, str, str, str],
) -> None:
    sim, service, conversation, message = twilio
    client = gateway(sim)
    snapshot = client.fetch_message(service, conversation, message)
    assert (snapshot.sid, snapshot.attributes) == (message, {"order": 1})
    assert snapshot.date_created is not None  # a date twilio-python could parse
    assert client.recipients(service, conversation) == 2
    new = client.create_message(service, conversation, RESEND)
    assert client.find_retry(service, conversation, "IM1", 1, retry_of=message) == new
    [first, _] = client.list_receipts(service, conversation, message)
    assert (first.status, first.error_code) == ("sent", None)
    assert first.participant_sid in {p["sid"] for p in sim.conversations[conversation].participants}
    prefix = f"/v1/Services/{service}/Conversations/{conversation}/"
    assert [p for _, p in sim.requests if not p.startswith(prefix)] == []
    with pytest.raises(TwilioError) as lost:  # the default service's short path: not there
        client.fetch_message("", conversation, message)
    assert lost.value.kind == "not_found"


def test_an_empty_service_is_the_default_services_short_path(sim: TwilioSimulator) -> None:
    conversation = sim.add_conversation()
    message = sim.add_message(conversation)
    assert gateway(sim).fetch_message("", conversation, message).sid == message
    assert sim.requests == [("GET", f"/v1/Conversations/{conversation}/Messages/{message}")]


def test_receipts_come_back_typed_with_every_page(sim: TwilioSimulator) -> None:
    conversation = sim.add_conversation(recipients=60)  # more than one page of 50
    message = sim.add_message(conversation)
    sim.set_receipt(message, "failed", 30005, receipt=59)
    receipts = gateway(sim).list_receipts(sim.chat_service_sid, conversation, message)
    assert len(receipts) == 60
    last = receipts[-1]
    assert (last.status, last.error_code) == ("failed", 30005)
    assert last.sid.startswith("DY")
    assert last.channel_message_sid.startswith("SM")
    assert isinstance(last.date_updated, datetime)
    assert isinstance(last.date_created, datetime)
    pages = [p for m, p in sim.requests if p.endswith("/Receipts")]
    assert len(pages) == 2


def test_the_marker_search_follows_next_page_url(sim: TwilioSimulator) -> None:
    conversation = sim.add_conversation()
    marked = sim.add_message(conversation, attributes={"redeliver": {"root": "IM1", "attempt": 2}})
    for n in range(60):  # newer messages push the retry onto the second page of 50
        sim.add_message(conversation, f"later {n}")
    client = gateway(sim)
    service = sim.chat_service_sid
    assert client.find_retry(service, conversation, "IM1", 2, retry_of="IMfailed") == marked
    assert len(sim.requests) == 2
    for n in range(50):  # beyond the search's limit of 100: not looked at, so nothing proved
        sim.add_message(conversation, f"much later {n}")
    with pytest.raises(MarkerSearchInconclusive):
        client.find_retry(service, conversation, "IM1", 2, retry_of="IMfailed")


@pytest.mark.parametrize(
    ("fault", "kind", "stored"),
    [
        (Fault.throttled(), "transient", 0),
        (Fault.error_before(503), "ambiguous", 0),  # the client cannot tell it from after
        (Fault.error_after(502), "ambiguous", 1),
        (Fault.error_after(503), "ambiguous", 1),
        (Fault.error_after(504), "ambiguous", 1),
        (Fault.timeout_after(3.0), "ambiguous", 1),  # the client gives up after 2 s
        (Fault(status=400, code=21610), "permanent", 0),
    ],
)
def test_a_create_failure_is_ambiguous_unless_it_proves_nothing_was_sent(
    sim: TwilioSimulator, fault: Fault, kind: str, stored: int
) -> None:
    conversation = sim.add_conversation()
    sim.fail_next("POST", fault)
    with pytest.raises(TwilioError) as failed:
        gateway(sim).create_message(sim.chat_service_sid, conversation, RESEND)
    assert failed.value.kind == kind
    assert len(sim.created) == stored


def test_a_5xx_on_a_read_is_transient(sim: TwilioSimulator) -> None:
    conversation = sim.add_conversation()
    message = sim.add_message(conversation)
    sim.fail_next("GET", Fault.error_after(502))
    with pytest.raises(TwilioError) as failed:
        gateway(sim).fetch_message(sim.chat_service_sid, conversation, message)
    assert failed.value.kind == "transient"


def test_a_refused_connection_is_a_real_refused_connect_and_transient(
    sim: TwilioSimulator,
) -> None:
    conversation = sim.add_conversation()
    message = sim.add_message(conversation)
    client = gateway(sim)
    sim.fail_next("POST", Fault.connection_refused(1.0))
    client.fetch_message(sim.chat_service_sid, conversation, message)  # the port closes after it
    with pytest.raises(TwilioError) as failed:
        client.create_message(sim.chat_service_sid, conversation, RESEND)
    assert failed.value.kind == "transient"
    assert "no connection" in str(failed.value)
    assert sim.created == []
    time.sleep(1.2)  # open again, on the same port
    client.create_message(sim.chat_service_sid, conversation, RESEND)
    assert len(sim.created) == 1


def test_the_webhook_header_is_sent_only_when_enabled(sim: TwilioSimulator) -> None:
    conversation = sim.add_conversation()
    gateway(sim).create_message(sim.chat_service_sid, conversation, RESEND)
    gateway(sim, webhooks=True).create_message(sim.chat_service_sid, conversation, RESEND)
    assert [m["x_twilio_webhook_enabled"] for m in sim.created] == [None, "true"]


def test_fault_rates_are_drawn_for_creates_and_counted() -> None:
    with running() as sim:
        conversation = sim.add_conversation()
        rates = FaultRates(throttled=0.2, error_before=0.2, error_after=0.2)
        sim.set_fault_rates(rates, seed=7, timeout_seconds=1.0)
        client = gateway(sim)
        kinds = []
        for _ in range(40):
            try:
                client.create_message(sim.chat_service_sid, conversation, RESEND)
                kinds.append("ok")
            except TwilioError as error:
                kinds.append(error.kind)
        counts = sim.fault_counts
        assert kinds.count("transient") == counts["throttled"] > 0
        assert kinds.count("ambiguous") == counts["error_before"] + counts["error_after"]
        assert counts["error_before"] > 0
        assert counts["error_after"] > 0
        assert len(sim.created) == kinds.count("ok") + counts["error_after"]


# -- policy v2's endpoints ---------------------------------------------------------------------

SERVICES = "/v1/Services/{ChatServiceSid}"


def test_participants_conversations_and_lookups_answer_as_the_spec_describes(
    sim: TwilioSimulator,
) -> None:
    service = sim.add_service("v2")
    whatsapp = sim.add_conversation(channel="whatsapp", service=service, address="+12125550100")
    participant = sim.participant_of(whatsapp)
    base = f"/v1/Services/{service}"
    fetched = get(sim, f"{base}/Conversations/{whatsapp}/Participants/{participant}")
    route = f"{SERVICE}/Participants/{{Sid}}"
    assert_conforms(fetched.json(), response_schema(route, "get", "200"))
    assert fetched.json()["messaging_binding"]["address"] == "whatsapp:+12125550100"

    created = requests.post(
        f"{sim.url}{base}/Conversations",
        data={"UniqueName": "redeliver-sms-x-1", "FriendlyName": "SMS fallback"},
        timeout=5,
    )
    assert created.status_code == 201
    assert_conforms(created.json(), response_schema(f"{SERVICES}/Conversations", "post", "201"))
    conversation = created.json()["sid"]
    by_name = get(sim, f"{base}/Conversations/redeliver-sms-x-1")
    route = f"{SERVICES}/Conversations/{{Sid}}"
    assert_conforms(by_name.json(), response_schema(route, "get", "200"))
    assert by_name.json()["sid"] == conversation
    again = requests.post(
        f"{sim.url}{base}/Conversations", data={"UniqueName": "redeliver-sms-x-1"}, timeout=5
    )
    assert (again.status_code, again.json()["code"]) == (409, 50353)

    pair = {"MessagingBinding.Address": "+12125550100", "MessagingBinding.ProxyAddress": "+1555"}
    added = requests.post(
        f"{sim.url}{base}/Conversations/{conversation}/Participants", pair, timeout=5
    )
    assert added.status_code == 201
    assert_conforms(added.json(), response_schema(f"{SERVICE}/Participants", "post", "201"))
    other = sim.add_conversation(service=service, recipients=0)
    taken = requests.post(f"{sim.url}{base}/Conversations/{other}/Participants", pair, timeout=5)
    assert (taken.status_code, taken.json()["code"]) == (409, 50416)

    found = get(sim, f"{base}/ParticipantConversations", Address="+12125550100")
    route = f"{SERVICES}/ParticipantConversations"
    assert_conforms(found.json(), response_schema(route, "get", "200"))
    assert [c["conversation_sid"] for c in found.json()["conversations"]] == [conversation]
    assert found.json()["conversations"][0]["participant_messaging_binding"] == {
        "type": "sms",
        "address": "+12125550100",
        "proxy_address": "+1555",
    }
    short = get(sim, "/v1/ParticipantConversations", Address="+12125550100")  # another service
    assert_conforms(short.json(), response_schema("/v1/ParticipantConversations", "get", "200"))
    assert short.json()["conversations"] == []


def test_the_gateway_finds_or_builds_an_sms_conversation(sim: TwilioSimulator) -> None:
    service = sim.add_service("v2-gateway")
    whatsapp = sim.add_conversation(channel="whatsapp", service=service, address="+12125550100")
    twilio = gateway(sim)
    address = twilio.participant_address(service, whatsapp, sim.participant_of(whatsapp))
    assert address == "whatsapp:+12125550100"
    assert twilio.conversation_with(service, "+12125550100", "+15550100000") is None
    built = twilio.create_conversation(service, "redeliver-sms-IMx-1", "SMS fallback")
    assert twilio.create_conversation(service, "redeliver-sms-IMx-1", "SMS fallback") == built
    assert twilio.add_sms_participant(service, built, "+12125550100", "+15550100000")
    assert not twilio.add_sms_participant(
        service, sim.add_conversation(service=service, recipients=0), "+12125550100", "+15550100000"
    )  # 50416
    assert twilio.conversation_with(service, "+12125550100", "+15550100000") == built
    assert twilio.conversation_with(service, "+12125550100", "+15550109999") is None  # other proxy
    assert twilio.conversation_with("", "+12125550100", "+15550100000") is None  # other service


def test_a_template_create_carries_content_and_no_body(sim: TwilioSimulator) -> None:
    conversation = sim.add_conversation(channel="whatsapp")
    content = "HX" + "1" * 32
    message = NewMessage("system", None, {"redeliver": {}}, None, content, {"1": "hello"})
    created = gateway(sim).create_message("", conversation, message)
    stored = sim.created[-1]
    assert stored["sid"] == created
    assert (stored["content_sid"], stored["body"]) == (content, None)
    assert json.loads(stored["content_variables"]) == {"1": "hello"}


class Everything(logging.Handler):
    """Every record of every logger, as the Lambda runtime's handler on the root logger sees it."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(f"{r.name} {r.levelname} {r.getMessage()}" for r in self.records)


@pytest.fixture(params=[logging.INFO, logging.DEBUG])
def root_logs(request: pytest.FixtureRequest) -> Iterator[Everything]:
    """The root logger at the level Lambda sets from `ApplicationLogLevel`, its records kept."""
    root, handler = logging.getLogger(), Everything()
    level = root.level
    root.setLevel(request.param)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_no_gateway_call_logs_a_phone_number_or_a_body(
    sim: TwilioSimulator, root_logs: Everything
) -> None:
    """twilio-python logs each request's method, URL and query (`ParticipantConversations?
    Address=%2B1...`) at INFO, and urllib3 each request line at DEBUG: none of it may reach the
    function's log, whatever level Lambda gives the root logger."""
    number, proxy, body = "+12125550147", "+15550100042", "Your code is 987654"
    service = sim.add_service("quiet-logs")
    whatsapp = sim.add_conversation(channel="whatsapp", service=service, address=number)
    message = sim.add_message(whatsapp, body)
    twilio = gateway(sim)
    assert twilio.fetch_message(service, whatsapp, message).body == body
    assert twilio.recipients(service, whatsapp) == 1
    participant = sim.participant_of(whatsapp)
    assert twilio.participant_address(service, whatsapp, participant) == "whatsapp:" + number
    assert twilio.conversation_with(service, number, proxy) is None
    built = twilio.create_conversation(service, "redeliver-sms-IMq-1", "SMS fallback")
    assert twilio.add_sms_participant(service, built, number, proxy)
    assert twilio.conversation_with(service, number, proxy) == built
    resend = NewMessage(
        "system", body, {"redeliver": {"root": message, "attempt": 1}}, None, None, None
    )
    new = twilio.create_message(service, built, resend)
    assert twilio.find_retry(service, built, message, 1, retry_of=message) == new
    assert twilio.list_receipts(service, whatsapp, message)
    with pytest.raises(TwilioError):
        twilio.fetch_message(service, whatsapp, "IM" + "0" * 32)
    logged = root_logs.text()
    for secret in (number, proxy, quote(number), quote(proxy), number[1:], proxy[1:], body):
        assert secret not in logged, logged
    assert "987654" not in logged
