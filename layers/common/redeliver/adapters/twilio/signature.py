"""Twilio webhook signatures: the first thing ingest does, before any parsing or write.

Twilio signs `full URL + each POST field name+value, sorted by name` with HMAC-SHA1 keyed by the
account's auth token (`X-Twilio-Signature`). Webhooks configured with a shared key say so in
`X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=HMAC_SHA256`; those are checked with that
key's secret. twilio-python's RequestValidator does the arithmetic (constant-time compare, the URL
with and without its port); this module supplies the right URL, fields and key.

`RequestValidator.validate` always computes both HMACs, with and without the port, though a
genuine webhook matches the first: ours is the URL without a port (`signed_url`), the form Twilio
signs. So `_signed_by` computes that one first, with the library's own `compute_signature` and
`remove_port`, and calls `validate` (both forms again) only when it does not match. The answer is
the same for every request; a genuine webhook costs one HMAC instead of two (`make bench`: about
a tenth of ingest's CPU beyond its write).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlparse

from twilio.request_validator import RequestValidator, get_signature_algorithm, remove_port

from redeliver.adapters.twilio.credentials import CredentialSource, TwilioCredentials

MAX_FIELDS = 100
SUPPORTED_ALGORITHMS = frozenset({"HMAC_SHA1", "HMAC_SHA256"})


class FormFields(dict[str, list[str]]):
    """Form fields with every value kept, blank ones included: dropping any breaks the signature.

    RequestValidator reads repeated fields through `getlist` (the Django-style protocol).
    """

    @classmethod
    def parse(cls, body: str) -> FormFields:
        fields = cls()
        for name, value in parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FIELDS):
            fields.setdefault(name, []).append(value)
        return fields

    def getlist(self, name: str) -> list[str]:
        return self[name]

    def first(self) -> dict[str, str]:
        """One value per field (the first), for parsing the event."""
        return {name: values[0] for name, values in self.items()}


def sign(url: str, fields: Mapping[str, str], token: str) -> str:
    """The X-Twilio-Signature Twilio sends for this URL and form (HMAC-SHA1, the auth token):
    what `redeliver send-receipt` and the offline tools sign with, checked by `_signed_by`."""
    return str(RequestValidator(token).compute_signature(url, dict(fields)))


def signed_url(domain: str, raw_path: str, raw_query: str = "", base_url: str = "") -> str:
    """The URL Twilio signed (DESIGN contract): the request's own, or WebhookBaseUrl + path."""
    url = f"{base_url}{raw_path}" if base_url else f"https://{domain}{raw_path}"
    return f"{url}?{raw_query}" if raw_query else url


@dataclass(frozen=True, slots=True)
class Verdict:
    valid: bool
    reason: str = ""  # for logs and metrics: missing | mismatch | unknown_key | bad_algorithm


class SignatureVerifier:
    """Checks signatures with the cached token; on a mismatch, re-reads the secret once.

    The re-read covers a rotated auth token. It happens at most once per `refresh_interval`
    seconds per container, so a flood of forged requests cannot turn into a flood of
    Secrets Manager calls.
    """

    def __init__(
        self,
        credentials: CredentialSource,
        refresh_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._credentials = credentials
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._last_refresh: float | None = None

    def verify(
        self,
        url: str,
        fields: FormFields,
        signature: str | None,
        settings_header: str | None = None,
    ) -> Verdict:
        if not signature:
            return Verdict(False, "missing")
        algorithm = get_signature_algorithm(settings_header)
        verdict = _check(
            self._credentials.get(), url, fields, signature, algorithm, settings_header
        )
        if verdict.valid or not self._may_refresh():
            return verdict
        return _check(
            self._credentials.get(refresh=True), url, fields, signature, algorithm, settings_header
        )

    def _may_refresh(self) -> bool:
        now = self._clock()
        if self._last_refresh is not None and now - self._last_refresh < self._refresh_interval:
            return False
        self._last_refresh = now
        return True


def _check(  # noqa: PLR0917 - a private helper, called twice with the same arguments
    credentials: TwilioCredentials,
    url: str,
    fields: FormFields,
    signature: str,
    algorithm: str,
    settings_header: str | None,
) -> Verdict:
    if settings_header and "key=" in settings_header:
        key_id = _setting(settings_header, "key")
        token = credentials.webhook_shared_keys.get(key_id)
        if token is None:
            return Verdict(False, "unknown_key")
        tokens = [token]
    else:
        # the secondary auth token too: a rotation in progress (adapters.twilio.credentials)
        tokens = [t for t in (credentials.auth_token, credentials.secondary_auth_token) if t]
    if algorithm.upper() not in SUPPORTED_ALGORITHMS:
        return Verdict(False, "bad_algorithm")
    valid = any(_signed_by(t, url, fields, signature, algorithm) for t in tokens)
    return Verdict(True) if valid else Verdict(False, "mismatch")


def _signed_by(token: str, url: str, fields: FormFields, signature: str, algorithm: str) -> bool:
    """RequestValidator.validate's answer, one HMAC sooner for a genuine webhook (module doc)."""
    validator = RequestValidator(token)
    expected = validator.compute_signature(remove_port(urlparse(url)), fields, algorithm)
    if hmac.compare_digest(expected.encode(), signature.encode()):
        return True
    return bool(validator.validate(url, fields, signature, algorithm=algorithm))


def _setting(header: str, name: str) -> str:
    for part in header.split(","):
        key, _, value = part.partition("=")
        if key.strip() == name:
            return value.strip()
    return ""
