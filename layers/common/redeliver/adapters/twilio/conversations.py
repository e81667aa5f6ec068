"""Twilio adapter: the Conversations REST calls the retry worker makes, and nothing else.

Every call goes to the receipt's own Conversation Service,
`/v1/Services/{ChatServiceSid}/Conversations/...` (twilio-python's
`client.conversations.v1.services(IS).conversations(CH)`): the short `/v1/Conversations/...` form
reaches only the account's default service, and a message of any other service is not found there.
An empty service SID (a receipt without `ChatServiceSid`) falls back to that short form.

Every failure is sorted into what the worker must do about it (`TwilioError.kind`):

- `transient`: Twilio did not act. A 429 / 20429 ("never processed, always safe to retry"), a
  request that never left (connection refused, connect timeout), credentials just rotated (401)
  or refused (403, 20003: a restricted key lacking a permission, a rotation propagating);
  and on a read (GET) also a 5xx or a read timeout. Safe to retry.
- `ambiguous`: a create that may have been stored: any 5xx (Twilio's edge can answer 502/503/504
  after the message was stored; error 20500's own note says so), a read timeout, a dropped
  connection. `messages.create` has no idempotency key, so before sending again the worker must
  look for the attempt's marker in the conversation.
- `not_found`: the conversation or message is gone (404).
- `permanent`: any other 4xx; sending again would fail the same way.

twilio-python raises `TwilioRestException`, or `TwilioServiceException` for RFC-9457 answers (not a
subclass): both are caught as `TwilioException`. Its default HTTP timeout is none: the client is
made with one (redeliver.adapters.twilio.client).

Policy v2's ways of sending (usecases/retry/sending) add: the failed receipt's participant (its
address: suppression, quiet hours, the SMS fallback's recipient), the service's
`ParticipantConversations?Address=` lookup, and creating a conversation (named by `UniqueName`,
so that a create repeated after a crash meets Twilio's 50353 and finds the first one) and an SMS
participant (Twilio's 50416: that address and proxy already sit in another conversation). None
of these sends a message, so a 5xx or a timeout on them is `transient`, never `ambiguous`.

Logs carry SIDs, never a phone number or a body (DESIGN, invariant 7); what twilio-python and
urllib3 would log for us (a request's URL and query) is held back by
redeliver.adapters.twilio.client.

`X-Twilio-Webhook-Enabled: true` on a create (`webhook_enabled`) makes Twilio fire the service's
post-event webhooks (`onMessageAdded`, ...) for the retry; without it they stay silent for
REST-created messages. Off by default: the customer's automation may react to the retry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, NoReturn

from requests import exceptions as http
from twilio.base import values
from twilio.base.exceptions import TwilioException
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from redeliver.adapters.twilio.client import make_client
from redeliver.adapters.twilio.credentials import CredentialSource
from redeliver.adapters.twilio.snapshots import (
    Participant,
    ReceiptSnapshot,
    binding_address,
    message_snapshot,
    receipt_snapshot,
)
from redeliver.domain.chain import MessageSnapshot, NewMessage, marker_of, parse_attributes

Kind = Literal["transient", "ambiguous", "not_found", "permanent"]
UNIQUE_NAME_TAKEN = 50353  # a conversation with that UniqueName exists (HTTP 409)
BINDING_TAKEN = 50416  # that address and proxy address sit in another conversation (HTTP 409)
AUTHENTICATION_FAILED = 20003  # permission denied: our credentials, not the resource


class TwilioError(Exception):
    def __init__(
        self, kind: Kind, detail: str, status: int | None = None, code: int | None = None
    ) -> None:
        super().__init__(f"twilio {kind}: {detail}")
        self.kind = kind
        self.status = status
        self.code = code

    @property
    def refused(self) -> bool:
        """Twilio refused our credentials (401, 403, or 20003 "permission denied": a rotated
        token, a revoked or restricted API key): it says nothing about the resource asked for."""
        return self.status in (401, 403) or self.code == AUTHENTICATION_FAILED


class MarkerSearchInconclusive(Exception):
    """The marker search ran out of its limit before it could prove an attempt was not sent."""


PARTICIPANTS_LISTED = 100  # more than this is a group whatever the rest are


class ConversationsGateway:
    """One twilio Client per container, created on first use from the Twilio secret.

    Every method takes the Conversation Service first (`event.chat_service_sid`); an empty one
    means the account's default service (the short `/v1/Conversations/...` path).
    """

    def __init__(
        self,
        credentials: CredentialSource,
        base_url: str = "",
        timeout: float = 10.0,
        webhook_enabled: bool = False,
    ) -> None:
        self._credentials = credentials
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._webhook_enabled = webhook_enabled
        self._client: Client | None = None
        self._refresh = False

    def _v1(self) -> Any:
        if self._client is None:
            self._client = make_client(
                self._credentials.get(refresh=self._refresh), self._timeout, self._base_url
            )
            self._refresh = False
        return self._client.conversations.v1

    def _conversations(self, service_sid: str) -> Any:
        v1 = self._v1()
        return v1.services(service_sid).conversations if service_sid else v1.conversations

    def _participant_conversations(self, service_sid: str) -> Any:
        v1 = self._v1()
        if service_sid:
            return v1.services(service_sid).participant_conversations
        return v1.participant_conversations

    def fetch_message(
        self, service_sid: str, conversation_sid: str, message_sid: str
    ) -> MessageSnapshot:
        try:
            conversation = self._conversations(service_sid)(conversation_sid)
            message = conversation.messages(message_sid).fetch()
        except Exception as error:
            self._raise(error, sent=False)
        return message_snapshot(message)

    def participants(self, service_sid: str, conversation_sid: str) -> list[Participant]:
        """The conversation's participants now (the first `PARTICIPANTS_LISTED`): who a new
        message would reach, each with its messaging address (None for a chat identity)."""
        try:
            conversation = self._conversations(service_sid)(conversation_sid)
            listed = conversation.participants.list(limit=PARTICIPANTS_LISTED)
        except Exception as error:
            self._raise(error, sent=False)
        return [Participant(str(p.sid), binding_address(p.messaging_binding)) for p in listed]

    def recipients(self, service_sid: str, conversation_sid: str) -> int:
        """Non-chat participants (those with a messaging binding: SMS, WhatsApp, ...)."""
        return sum(1 for p in self.participants(service_sid, conversation_sid) if p.address)

    def participant_address(
        self, service_sid: str, conversation_sid: str, participant_sid: str
    ) -> str | None:
        """A participant's messaging address (`+1555...`, `whatsapp:+1555...`); None for a chat
        participant (an identity, no binding)."""
        try:
            conversation = self._conversations(service_sid)(conversation_sid)
            participant = conversation.participants(participant_sid).fetch()
        except Exception as error:
            self._raise(error, sent=False)
        return binding_address(participant.messaging_binding)

    def conversation_with(self, service_sid: str, address: str, proxy_address: str) -> str | None:
        """The service's open conversation where `address` is a participant through
        `proxy_address` (`ParticipantConversations?Address=`); None when there is none."""
        try:
            listing = self._participant_conversations(service_sid)
            found = listing.list(address=address, limit=200, page_size=50)
        except Exception as error:
            self._raise(error, sent=False)
        for entry in found:
            binding = entry.participant_messaging_binding
            proxy = binding.get("proxy_address") if isinstance(binding, Mapping) else None
            if proxy == proxy_address and entry.conversation_state != "closed":
                return str(entry.conversation_sid)
        return None

    def create_conversation(self, service_sid: str, unique_name: str, friendly_name: str) -> str:
        """A conversation named `unique_name`, or the one that already has that name."""
        try:
            created = self._conversations(service_sid).create(
                unique_name=unique_name, friendly_name=friendly_name
            )
        except Exception as error:
            if getattr(error, "code", None) != UNIQUE_NAME_TAKEN:
                self._raise(error, sent=False)
            try:  # the path's Sid accepts the UniqueName
                created = self._conversations(service_sid)(unique_name).fetch()
            except Exception as again:
                self._raise(again, sent=False)
        return str(created.sid)

    def add_sms_participant(
        self, service_sid: str, conversation_sid: str, address: str, proxy_address: str
    ) -> bool:
        """Add `address` through `proxy_address`; False when Twilio answers 50416 (the pair sits
        in another conversation already: look it up again)."""
        try:
            self._conversations(service_sid)(conversation_sid).participants.create(
                messaging_binding_address=address, messaging_binding_proxy_address=proxy_address
            )
        except Exception as error:
            if getattr(error, "code", None) == BINDING_TAKEN:
                return False
            self._raise(error, sent=False)
        return True

    def create_message(self, service_sid: str, conversation_sid: str, message: NewMessage) -> str:
        def given(value: Any) -> Any:
            return values.unset if value is None else value

        try:
            created = self._conversations(service_sid)(conversation_sid).messages.create(
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
                x_twilio_webhook_enabled="true" if self._webhook_enabled else values.unset,
            )
        except Exception as error:
            self._raise(error, sent=True)
        return str(created.sid)

    def find_retry(
        self,
        service_sid: str,
        conversation_sid: str,
        root: str,
        attempt: int,
        *,
        since: int | None = None,
        retry_of: str = "",
        limit: int = 100,
    ) -> str | None:
        """The SID of the message in the conversation carrying this attempt's marker; None only
        when the search has proved there is none.

        The oldest such message back to the bound, not the newest: the claimant creates its
        retry before anyone can copy it, and a copy (the app sending a message again, its
        attributes and all) carries the same marker, which proves nothing (DESIGN invariant
        9). Recording the copy would leave the real retry unlinked, its failure its own root.
        A search cut short by `limit` returns the oldest match it read.

        A retry is created after its claim (`since`: the claim's time, less the clocks' possible
        skew), and after the message it retries (`retry_of`: a claim from before intents were
        recorded, searched for in the failed conversation): the search reads newest first and
        stops at the end of the page holding the first message older than the claim (the page
        is paid for, and a back-dated message may sit just above the retry), at `retry_of`, or
        at the conversation's oldest, having seen every place the retry could be. `limit`
        bounds the read (pages of 50, through Twilio's `next_page_url`); a busy conversation
        where the limit runs out first proves nothing (`MarkerSearchInconclusive`): taking the
        claim over would send twice, or record a message that went out as given up.
        """
        seen = 0
        oldest: str | None = None  # the oldest message read that carries the marker
        page_size = min(limit, 50)
        past_since = False
        try:
            recent = self._conversations(service_sid)(conversation_sid).messages.stream(
                order="desc", limit=limit, page_size=page_size
            )
            for message in recent:
                seen += 1
                marked = marker_of(parse_attributes(message.attributes))
                if marked is not None and marked[:2] == (root, attempt):
                    oldest = str(message.sid)
                if message.sid == retry_of:  # everything newer has been read
                    return oldest
                past_since = past_since or (
                    since is not None and _older(message.date_created, since)
                )
                if past_since and seen % page_size == 0:
                    # Older than the claim, and the page it came in is read to its end. Not at
                    # once: `Order=desc` is by index, while DateCreated can be set on a create
                    # (back-dated), so a message older by date may sit just above the retry.
                    # The rest of a page already fetched costs no call.
                    return oldest
        except Exception as error:
            self._raise(error, sent=False)
        if seen < limit or oldest is not None:  # the whole conversation read, or found
            return oldest
        bound = f"since {since}" if since is not None else f"before {retry_of}"
        raise MarkerSearchInconclusive(
            f"the {limit} newest messages hold no marker of attempt {attempt} of {root} and "
            f"end {bound}: the retry may be further back"
        )

    def list_receipts(
        self, service_sid: str, conversation_sid: str, message_sid: str
    ) -> list[ReceiptSnapshot]:
        """Every delivery receipt of a message, as Twilio holds it now (all pages)."""
        try:
            message = self._conversations(service_sid)(conversation_sid).messages(message_sid)
            receipts = message.delivery_receipts.list(page_size=50)
        except Exception as error:
            self._raise(error, sent=False)
        return [receipt_snapshot(r) for r in receipts]

    def _raise(self, error: Exception, sent: bool) -> NoReturn:
        if isinstance(error, TwilioException):
            status, code = status_and_code(error)
            detail = f"HTTP {status} code {code}"
            if status == 401:  # a rotated auth token or API key: read the secret again
                self._client, self._refresh = None, True
                raise TwilioError("transient", detail, status, code) from error
            if status == 403 or code == AUTHENTICATION_FAILED:
                # Twilio refused our credentials (a restricted key lacking a permission, a
                # rotation still propagating): nothing was done, and nothing is wrong with the
                # resource. Never a give-up: it comes back, and ends in the DLQ if it lasts.
                raise TwilioError("transient", detail, status, code) from error
            if status == 429 or code == 20429:  # never processed
                raise TwilioError("transient", detail, status, code) from error
            if status >= 500:  # on a create, maybe stored before the edge failed
                kind: Kind = "ambiguous" if sent else "transient"
                raise TwilioError(kind, detail, status, code) from error
            if status == 404:
                raise TwilioError("not_found", detail, status, code) from error
            raise TwilioError("permanent", detail, status, code) from error
        if isinstance(error, http.ConnectTimeout | http.InvalidURL) or (
            isinstance(error, http.ConnectionError) and _never_connected(error)
        ):
            raise TwilioError("transient", f"no connection: {type(error).__name__}") from error
        if isinstance(error, http.RequestException):  # sent, no answer: a read timeout, a reset
            raise TwilioError(
                "ambiguous" if sent else "transient", f"{type(error).__name__}"
            ) from error
        raise error


def status_and_code(error: TwilioException) -> tuple[int, int | None]:
    """A request's error carries `status` and `code`; a page of a list (`.list()`, its
    `next_page_url`s) raises a bare TwilioException("Unable to fetch page", response) instead,
    which would otherwise read as status 0, a permanent error, even for a 429."""
    status = int(getattr(error, "status", 0) or 0)
    code = getattr(error, "code", None)
    response = error.args[1] if len(error.args) > 1 else None
    if not status and isinstance(response, Response):
        status = int(response.status_code)
        try:
            body = json.loads(response.text)
        except (TypeError, ValueError):
            body = None
        if isinstance(body, Mapping) and isinstance(body.get("code"), int):
            code = body["code"]
    return status, code


def _older(created: Any, since: int) -> bool:
    """A message's DateCreated is before `since` (epoch seconds); unknown is not."""
    return isinstance(created, datetime) and created.timestamp() < since


def _never_connected(error: Exception) -> bool:
    """requests wraps urllib3's MaxRetryError; its reason says whether a connection was made."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError)
