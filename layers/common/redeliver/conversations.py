"""Twilio adapter: the Conversations REST calls the retry worker makes, and nothing else.

Every failure is sorted into what the worker must do about it (`TwilioError.kind`):

- `transient`: Twilio did not act (429 / 20429 "never processed, always safe to retry", 5xx, a
  connection never made, credentials just rotated). Safe to retry.
- `ambiguous`: the create request may have reached Twilio (a read timeout, a dropped
  connection). `messages.create` has no idempotency key, so before sending again the worker must
  look for the attempt's marker in the conversation.
- `not_found`: the conversation or message is gone (404).
- `permanent`: any other 4xx; sending again would fail the same way.

twilio-python raises `TwilioRestException`, or `TwilioServiceException` for RFC-9457 answers (not a
subclass): both are caught as `TwilioException`. Its default HTTP timeout is none: set here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn

from requests import exceptions as http
from twilio.base import values
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from redeliver.chain import MARKER_KEY, MessageSnapshot, NewMessage, parse_attributes
from redeliver.credentials import CredentialSource, TwilioCredentials

Kind = Literal["transient", "ambiguous", "not_found", "permanent"]


class TwilioError(Exception):
    def __init__(
        self, kind: Kind, detail: str, status: int | None = None, code: int | None = None
    ) -> None:
        super().__init__(f"twilio {kind}: {detail}")
        self.kind = kind
        self.status = status
        self.code = code


class ConversationsGateway:
    """One twilio Client per container, created on first use from the Twilio secret."""

    def __init__(
        self,
        credentials: CredentialSource,
        base_url: str = "",
        timeout: float = 10.0,
    ) -> None:
        self._credentials = credentials
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._client: Client | None = None
        self._refresh = False

    def _conversations(self) -> Any:
        if self._client is None:
            self._client = _make_client(self._credentials.get(refresh=self._refresh), self._timeout)
            self._refresh = False
            if self._base_url:  # the simulator offline; read by twilio at request time
                self._client.conversations.base_url = self._base_url
        return self._client.conversations.v1.conversations

    def fetch_message(self, conversation_sid: str, message_sid: str) -> MessageSnapshot:
        try:
            message = self._conversations()(conversation_sid).messages(message_sid).fetch()
        except Exception as error:
            self._raise(error, sent=False)
        return _snapshot(message)

    def recipients(self, conversation_sid: str) -> int:
        """Non-chat participants (those with a messaging binding: SMS, WhatsApp, ...)."""
        try:
            participants = self._conversations()(conversation_sid).participants.list(limit=100)
        except Exception as error:
            self._raise(error, sent=False)
        return sum(1 for p in participants if p.messaging_binding)

    def create_message(self, conversation_sid: str, message: NewMessage) -> str:
        def given(value: Any) -> Any:
            return values.unset if value is None else value

        try:
            created = self._conversations()(conversation_sid).messages.create(
                author=given(message.author),
                body=given(message.body),
                attributes=json.dumps(message.attributes, separators=(",", ":")),
                media_sid=given(message.media_sid),
                content_sid=given(message.content_sid),
                content_variables=given(
                    json.dumps(message.content_variables)
                    if message.content_variables is not None
                    else None
                ),
            )
        except Exception as error:
            self._raise(error, sent=True)
        return str(created.sid)

    def find_retry(
        self, conversation_sid: str, root: str, attempt: int, limit: int = 100
    ) -> str | None:
        """The SID of a message in the conversation carrying this attempt's marker, if any.

        Newest first: a retry is recent. `limit` bounds the look (30 message actions per second
        per conversation means 100 covers any plausible gap between a claim and this check).
        """
        try:
            recent = self._conversations()(conversation_sid).messages.list(
                order="desc", limit=limit, page_size=min(limit, 50)
            )
        except Exception as error:
            self._raise(error, sent=False)
        for message in recent:
            marker = parse_attributes(message.attributes).get(MARKER_KEY)
            if (
                isinstance(marker, Mapping)
                and marker.get("root") == root
                and marker.get("attempt") == attempt
            ):
                return str(message.sid)
        return None

    def _raise(self, error: Exception, sent: bool) -> NoReturn:
        if isinstance(error, TwilioException):
            status = int(getattr(error, "status", 0) or 0)
            code = getattr(error, "code", None)
            detail = f"HTTP {status} code {code}"
            if status == 401:  # a rotated auth token or API key: read the secret again
                self._client, self._refresh = None, True
                raise TwilioError("transient", detail, status, code) from error
            if status == 429 or code == 20429 or status >= 500:
                raise TwilioError("transient", detail, status, code) from error
            if status == 404:
                raise TwilioError("not_found", detail, status, code) from error
            raise TwilioError("permanent", detail, status, code) from error
        if isinstance(error, http.ConnectTimeout | http.InvalidURL) or (
            isinstance(error, http.ConnectionError) and _never_connected(error)
        ):
            raise TwilioError("transient", f"no connection: {type(error).__name__}") from error
        if isinstance(error, http.RequestException):
            kind: Kind = "ambiguous" if sent else "transient"
            raise TwilioError(kind, f"{type(error).__name__}") from error
        raise error


def _never_connected(error: Exception) -> bool:
    """requests wraps urllib3's MaxRetryError; its reason says whether a connection was made."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError)


def _make_client(credentials: TwilioCredentials, timeout: float) -> Client:
    http_client = TwilioHttpClient(timeout=timeout)
    if credentials.api_key_sid and credentials.api_key_secret:
        return Client(
            credentials.api_key_sid,
            credentials.api_key_secret,
            account_sid=credentials.account_sid,
            http_client=http_client,
        )
    return Client(credentials.account_sid, credentials.auth_token, http_client=http_client)


def _snapshot(message: Any) -> MessageSnapshot:
    delivery = message.delivery if isinstance(message.delivery, Mapping) else {}
    total = delivery.get("total")
    created = message.date_created
    return MessageSnapshot(
        sid=str(message.sid),
        conversation_sid=str(message.conversation_sid),
        author=message.author,
        body=message.body,
        attributes=parse_attributes(message.attributes),
        media_sids=[str(m["sid"]) for m in (message.media or []) if isinstance(m, Mapping)],
        content_sid=getattr(message, "content_sid", None) or None,
        recipients=int(total) if isinstance(total, int) else None,
        date_created=created.astimezone(UTC) if isinstance(created, datetime) else None,
    )
