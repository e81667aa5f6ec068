"""A Content template instead of free-form content (action `template`).

For WhatsApp 63016 (outside the 24-hour session) a free-form resend fails again by
construction; an approved template may be sent at any time. The new message carries
`ContentSid` and `ContentVariables` and no `Body` (Twilio refuses both together), in the same
conversation, so the stale-claim search is the same as a plain retry's.
"""

from __future__ import annotations

from collections.abc import Mapping

from redeliver.domain.chain import (
    MARKER_KEY,
    CannotResend,
    Chain,
    MessageSnapshot,
    NewMessage,
    marked_attributes,
)
from redeliver.domain.policy import Template
from redeliver.usecases.retry.sending.same import Same


class Templated(Same):
    name = "template"

    def __init__(self, template: Template) -> None:
        self._template = template

    def prepare(self, original: MessageSnapshot, chain: Chain) -> NewMessage | CannotResend:
        own = original.marker.get("content_variables")
        variables = self._template.render(original.body, own if isinstance(own, Mapping) else None)
        # The rendered variables travel in the marker: Twilio returns no content_variables and
        # this message has no Body, so a resend of it (any way) reads them from there.
        attributes = marked_attributes(original, chain)
        attributes[MARKER_KEY] = {**attributes[MARKER_KEY], "content_variables": variables}
        return NewMessage(
            author=original.author,
            body=None,
            attributes=attributes,
            content_sid=self._template.content_sid,
            content_variables=variables,
        )
