"""Build API Gateway HTTP API (payload format 2.0) events for the webhook route, signed as Twilio
signs them. Used by events/ (through tools/make_events.py), the tests and the offline stack, so
every one of them hands the ingest handler the same shape API Gateway does.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from redeliver.adapters.twilio import signature

DEFAULT_DOMAIN = "abc123.execute-api.us-east-1.amazonaws.com"
ROUTE_PATH = "/twilio/delivery-receipts"


def sign(url: str, fields: Mapping[str, str], token: str) -> str:
    """The X-Twilio-Signature Twilio would send for this URL and form: the layer's own code
    (redeliver.adapters.twilio.signature.sign, which `redeliver send-receipt` signs with too)."""
    return signature.sign(url, fields, token)


def http_api_event(
    fields: Mapping[str, str],
    *,
    token: str | None,
    domain: str = DEFAULT_DOMAIN,
    path: str = ROUTE_PATH,
    query: str = "",
    base64_body: bool = True,
    signed_url: str | None = None,
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
    method: str = "POST",
    request_id: str | None = None,
    epoch: float | None = None,
) -> dict[str, Any]:
    """A payload-2.0 event as API Gateway hands it to Lambda (headers lowercased).

    `token` signs the event (None: no signature header); `signed_url` overrides the URL signed,
    e.g. to sign for a custom domain; `body` overrides the encoded form (malformed bodies).
    """
    form_body = urlencode(list(fields.items())) if body is None else body
    all_headers = {
        "content-type": "application/x-www-form-urlencoded",
        "host": domain,
        "user-agent": "TwilioProxy/1.1",
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
    }
    if token is not None:
        url = signed_url or f"https://{domain}{path}" + (f"?{query}" if query else "")
        all_headers["x-twilio-signature"] = sign(url, fields, token)
    all_headers.update(headers or {})
    return request_event(
        method,
        path,
        query,
        all_headers,
        form_body.encode(),
        domain=domain,
        base64_body=base64_body,
        request_id=request_id,
        epoch=epoch,
    )


def request_event(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    domain: str,
    route_key: str | None = None,
    base64_body: bool = True,
    source_ip: str = "54.172.60.0",
    request_id: str | None = None,
    epoch: float | None = None,
) -> dict[str, Any]:
    """The payload-2.0 event API Gateway makes of one HTTP request (headers lowercased, the
    body base64-encoded as it is for form posts)."""
    now = time.time() if epoch is None else epoch
    lowered = {k.lower(): v for k, v in headers.items()}
    lowered["content-length"] = str(len(body))
    route = route_key or f"{method} {ROUTE_PATH}"
    user_agent = lowered.get("user-agent", "")
    return {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": domain.split(".", 1)[0],
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": request_id or uuid.uuid4().hex[:16],
            "routeKey": route,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": base64.b64encode(body).decode() if base64_body else body.decode(errors="replace"),
        "isBase64Encoded": base64_body,
    }
