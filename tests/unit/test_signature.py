"""redeliver.adapters.twilio.signature: RequestValidator's answer for every request, one HMAC for a
genuine one."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from redeliver.adapters.twilio.credentials import TwilioCredentials
from redeliver.adapters.twilio.signature import FormFields, SignatureVerifier, _signed_by

TOKEN = "12345678901234567890123456789012"  # noqa: S105 - a test value, not a secret
URL = "https://abc.execute-api.us-east-1.amazonaws.com/twilio/delivery-receipts"
BODY = "MessageSid=IM1&Status=sent&ErrorCode=&AccountSid=AC1&Status=read"


class Credentials:
    def get(self, refresh: bool = False) -> TwilioCredentials:
        return TwilioCredentials("AC" + "0" * 32, TOKEN)


def sign(url: str, body: str = BODY, token: str = TOKEN, algorithm: str = "HMAC_SHA1") -> str:
    signature: str = RequestValidator(token).compute_signature(
        url, FormFields.parse(body), algorithm
    )
    return signature


def hmacs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    computed: list[str] = []
    original = RequestValidator.compute_signature

    def counting(self: RequestValidator, uri: str, *args: Any, **kwargs: Any) -> str:
        computed.append(uri)
        result: str = original(self, uri, *args, **kwargs)
        return result

    monkeypatch.setattr(RequestValidator, "compute_signature", counting)
    return computed


def test_a_genuine_webhook_costs_one_hmac(monkeypatch: pytest.MonkeyPatch) -> None:
    signature = sign(URL)
    computed = hmacs(monkeypatch)
    verdict = SignatureVerifier(Credentials()).verify(URL, FormFields.parse(BODY), signature)
    assert verdict.valid
    assert computed == [URL]


def test_a_signature_over_the_url_with_its_port_is_still_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_port = URL.replace(".com/", ".com:443/")
    signature = sign(with_port)
    computed = hmacs(monkeypatch)
    verifier = SignatureVerifier(Credentials())
    assert verifier.verify(URL, FormFields.parse(BODY), signature).valid
    assert with_port in computed  # through the library's own validate, both forms


def test_a_forged_signature_is_a_mismatch() -> None:
    forged = sign(URL, token="x" * 32)
    verdict = SignatureVerifier(Credentials()).verify(URL, FormFields.parse(BODY), forged)
    assert (verdict.valid, verdict.reason) == (False, "mismatch")


urls = st.builds(
    lambda host, port, path, query: f"https://{host}{port}/{path}{query}",
    st.sampled_from(["a.example.com", "abc.execute-api.us-east-1.amazonaws.com"]),
    st.sampled_from(["", ":443", ":8443"]),
    st.text(alphabet="abcdef/-", max_size=12),
    st.sampled_from(["", "?x=1", "?bodySHA256=abc"]),
)


@given(
    url=urls,
    signed=urls,
    body=st.sampled_from([BODY, "", "A=1&A=2&B=", "Status=failed&ErrorCode=30003"]),
    algorithm=st.sampled_from(["HMAC_SHA1", "HMAC_SHA256"]),
    token=st.sampled_from([TOKEN, "y" * 32]),
)
def test_the_answer_is_request_validators_for_any_request(
    url: str, signed: str, body: str, algorithm: str, token: str
) -> None:
    fields = FormFields.parse(body)
    signature = sign(signed, body, token, algorithm)
    expected = RequestValidator(TOKEN).validate(url, fields, signature, algorithm=algorithm)
    assert _signed_by(TOKEN, url, fields, signature, algorithm) == expected
