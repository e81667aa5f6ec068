"""The ways to send (usecases/retry/sending): which way a decision takes, and what each prepares."""

from __future__ import annotations

from datetime import UTC, datetime

from redeliver.domain.chain import CannotResend, Chain, MessageSnapshot, NewMessage
from redeliver.domain.policy import Send, Template
from redeliver.usecases.retry.sending import way_for
from redeliver.usecases.retry.sending.same import Same
from redeliver.usecases.retry.sending.sms import SmsFallback, unique_name
from redeliver.usecases.retry.sending.template import Templated

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
HX = "HX" + "0" * 32
CHAIN = Chain("IMroot", 2, T0)


def original(**changes: object) -> MessageSnapshot:
    fields: dict[str, object] = {
        "sid": "IMfailed",
        "conversation_sid": "CH1",
        "author": "shop",
        "body": "Your code is 42",
        "attributes": {"order": 7, "redeliver": {"max_attempts": 2}},
        "media_sids": [],
        "content_sid": None,
        "date_created": T0,
    }
    fields.update(changes)
    return MessageSnapshot(**fields)  # type: ignore[arg-type]


def test_each_decision_takes_its_way() -> None:
    template = Template(HX, {"1": "{body}"})
    assert isinstance(way_for(Send(), "+12125550100"), Same)
    assert isinstance(way_for(Send("template", template), None), Templated)
    sms = Send("fallback_sms", None, "+15550100000")
    assert isinstance(way_for(sms, "whatsapp:+12125550100"), SmsFallback)
    assert isinstance(way_for(sms, "+12125550100"), Same)  # not on WhatsApp: a retry
    assert isinstance(way_for(sms, None), Same)  # nobody known to text
    assert isinstance(way_for(sms, "whatsapp:shop-id"), Same)  # no phone number in it


def test_the_same_way_keeps_the_content_and_marks_it() -> None:
    prepared = Same().prepare(original(), CHAIN)
    assert prepared == NewMessage(
        "shop",
        "Your code is 42",
        {
            "order": 7,
            "redeliver": {
                "max_attempts": 2,
                "retry_of": "IMfailed",
                "root": "IMroot",
                "attempt": 2,
            },
        },
    )


def test_a_template_replaces_the_body_with_content() -> None:
    way = Templated(Template(HX, {"1": "{body}", "2": "x"}))
    prepared = way.prepare(original(), CHAIN)
    assert isinstance(prepared, NewMessage)
    assert (prepared.body, prepared.content_sid, prepared.media_sid) == (None, HX, None)
    assert prepared.content_variables == {"1": "Your code is 42", "2": "x"}
    assert prepared.attributes["redeliver"]["attempt"] == 2
    own = original(attributes={"redeliver": {"content_variables": {"2": "mine"}}})
    mine = way.prepare(own, CHAIN)
    assert isinstance(mine, NewMessage)
    assert mine.content_variables == {"1": "Your code is 42", "2": "mine"}


def test_an_sms_fallback_keeps_the_content_and_marks_the_channel() -> None:
    prepared = SmsFallback("+15550100000", "+12125550100").prepare(original(), CHAIN)
    assert isinstance(prepared, NewMessage)
    assert prepared.body == "Your code is 42"
    assert prepared.attributes["redeliver"]["channel"] == "sms"
    assert prepared.attributes["redeliver"]["root"] == "IMroot"
    nothing = SmsFallback("+15550100000", "+12125550100").prepare(original(body=None), CHAIN)
    assert nothing == CannotResend("nothing_to_send")


def test_the_sms_conversation_is_named_by_root_attempt_and_sender() -> None:
    assert unique_name(CHAIN, "+15550100000") == "redeliver-sms-IMroot-2-15550100000"
    assert unique_name(Chain("IMroot", 3, T0), "+15550100000") != unique_name(CHAIN, "+15550100000")
    assert unique_name(CHAIN, "+15550100001") != unique_name(CHAIN, "+15550100000")


def test_a_template_resend_can_itself_be_resent_with_the_same_variables() -> None:
    # Twilio returns no content_variables, and a template resend has no Body: unless the
    # rendered variables travel in its marker, its own failure gives up (template_variables_
    # unknown) or renders `{body}` empty.
    first = Templated(Template(HX, {"1": "{body}"})).prepare(original(), CHAIN)
    assert isinstance(first, NewMessage)
    assert first.content_variables == {"1": "Your code is 42"}
    resent = original(
        sid="IMtemplated",
        body=None,
        content_sid=HX,
        attributes=dict(first.attributes),
    )
    chain = Chain("IMroot", 3, T0)
    again = Same().prepare(resent, chain)
    assert isinstance(again, NewMessage)
    assert (again.content_sid, again.content_variables) == (HX, {"1": "Your code is 42"})
    templated = Templated(Template(HX, {"1": "{body}"})).prepare(resent, chain)
    assert isinstance(templated, NewMessage)
    assert templated.content_variables == {"1": "Your code is 42"}
