"""Twilio adapter: the twilio-python `Client` the gateway uses, and what its libraries may log.

twilio-python's default HTTP timeout is none: `make_client` sets the gateway's. Offline,
`base_url` (the simulator's) replaces conversations.twilio.com in every request, including the
absolute `next_page_url`s Twilio's answers carry. An API key, when the secret has one, signs the
requests instead of the auth token.

Logs carry SIDs, never a phone number or a body (DESIGN, invariant 7), and that includes what the
libraries log for us: twilio-python logs every request's method, URL and query
(`ParticipantConversations?Address=%2B1...`) at INFO, and urllib3 every request line at DEBUG
(its warnings may name the URL too), while Lambda sets the root logger to `ApplicationLogLevel`.
Both loggers are held above that here, on import (redeliver.adapters.twilio.conversations
imports this module), before any client exists.
"""

from __future__ import annotations

import logging
from typing import Any

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from redeliver.adapters.twilio.credentials import TwilioCredentials

TWILIO_URL = "https://conversations.twilio.com"
# loggers whose records may carry a request's URL and query: the level each is held at
LIBRARY_LOGGERS = {
    "twilio.http_client": logging.WARNING,  # INFO: method, URL, query, headers
    "twilio.async_http_client": logging.WARNING,
    "urllib3": logging.ERROR,  # DEBUG: each request line; WARNING: retries, bad headers (URL)
}
for _name, _level in LIBRARY_LOGGERS.items():
    logging.getLogger(_name).setLevel(_level)


class _Redirected(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no types
    """Offline: every Conversations request, including the absolute `next_page_url`s Twilio's
    answers carry, goes to `base_url` (the simulator) instead of conversations.twilio.com."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_URL):
            url = self._base_url + url.removeprefix(TWILIO_URL)
        return super().request(method, url, *args, **kwargs)


def make_client(credentials: TwilioCredentials, timeout: float, base_url: str) -> Client:
    http_client = _Redirected(base_url, timeout) if base_url else TwilioHttpClient(timeout=timeout)
    if credentials.api_key_sid and credentials.api_key_secret:
        return Client(
            credentials.api_key_sid,
            credentials.api_key_secret,
            account_sid=credentials.account_sid,
            http_client=http_client,
        )
    return Client(credentials.account_sid, credentials.auth_token, http_client=http_client)
