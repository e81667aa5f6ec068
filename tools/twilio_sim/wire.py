"""Twilio's wire format, as the simulator answers: an `Answer` (status, JSON body, and when it
leaves), Twilio's dates, its error bodies, the absolute URLs under https://conversations.twilio.com,
the short form's view of a resource (`scoped`) and paging (`page`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

TWILIO_URL = "https://conversations.twilio.com"  # what Twilio's absolute URLs start with
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_TOKEN = re.compile(r"^PT(\d+)$")


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    delay: float = 0.0
    refuse_for: float = 0.0  # after this answer, refuse connections for so many seconds


def base_path(service: str | None, conversation: str) -> str:
    scope = f"/Services/{service}" if service else ""
    return f"/v1{scope}/Conversations/{conversation}"


def scoped(resource: dict[str, Any], service: str | None) -> dict[str, Any]:
    """A resource as the path it was asked by shows it: the short form has no chat_service_sid
    and its URLs are short ones (the spec's two schemas differ in exactly that)."""
    if service:
        return dict(resource)
    short = {k: v for k, v in resource.items() if k != "chat_service_sid"}
    prefix = f"{TWILIO_URL}/v1/Services/{resource['chat_service_sid']}/"
    for key in ("url",):
        if isinstance(short.get(key), str):
            short[key] = short[key].replace(prefix, f"{TWILIO_URL}/v1/")
    if isinstance(short.get("links"), dict):
        short["links"] = {
            k: v.replace(prefix, f"{TWILIO_URL}/v1/") for k, v in short["links"].items()
        }
    return short


def page(
    key: str,
    items: list[tuple[int, dict[str, Any]]],
    path: str,
    query: dict[str, list[str]],
    most: int = 100,
) -> Answer:
    """One page of a list, as Twilio pages: `PageSize` (1..`most`, the spec's maximum for that
    list: 50 for Receipts, 100 elsewhere; default 50), `Order` (messages: `asc` or `desc`), and a
    `PageToken` naming the last item seen, so items added meanwhile shift nothing."""
    first = {k: v[0] for k, v in query.items()}
    try:
        size = int(first.get("PageSize", "50"))
        number = int(first.get("Page", "0"))
    except ValueError:
        return Answer(400, error(400, 20001))
    if not 1 <= size <= most or number < 0:
        return Answer(400, error(400, 20001))
    order = first.get("Order", "asc")
    if order not in ("asc", "desc"):  # the spec's enum (only messages list it)
        return Answer(400, error(400, 20001))
    if order == "desc":
        items = list(reversed(items))
    token = first.get("PageToken")
    if token is not None:
        match = _TOKEN.match(token)
        if match is None:
            return Answer(400, error(400, 20001))
        last = int(match.group(1))
        items = [i for i in items if (i[0] < last if order == "desc" else i[0] > last)]
    shown = items[:size]
    base = {k: v for k, v in first.items() if k not in ("Page", "PageToken", "PageSize")}

    def url(page_number: int, page_token: str | None) -> str:
        params = {**base, "PageSize": str(size), "Page": str(page_number)}
        if page_token is not None:
            params["PageToken"] = page_token
        return f"{TWILIO_URL}{path}?{urlencode(params)}"

    more = len(items) > size
    return Answer(
        200,
        {
            key: [item for _, item in shown],
            "meta": {
                "page": number,
                "page_size": size,
                "first_page_url": url(0, None),
                "previous_page_url": url(number - 1, None) if number > 0 else None,
                "url": url(number, token),
                "next_page_url": url(number + 1, f"PT{shown[-1][0]}") if more else None,
                "key": key,
            },
        },
    )


def twilio_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(DATE_FORMAT)


def header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def not_found() -> Answer:
    return Answer(404, error(404, 20404))


def error(status: int, code: int) -> dict[str, Any]:
    """Twilio's error body (the spec describes only successes; twilio-python reads these keys)."""
    return {
        "code": code,
        "message": f"simulated error {code}",
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
