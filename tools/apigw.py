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

from twilio.request_validator import RequestValidator

DEFAULT_DOMAIN = "abc123.execute-api.us-east-1.amazonaws.com"
ROUTE_PATH = "/twilio/delivery-receipts"


def sign(url: str, fields: Mapping[str, str], token: str) -> str:
    """The X-Twilio-Signature Twilio would send for this URL and form."""
    return str(RequestValidator(token).compute_signature(url, dict(fields)))


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
        "content-length": str(len(form_body.encode())),
    }
    if token is not None:
        url = signed_url or f"https://{domain}{path}" + (f"?{query}" if query else "")
        all_headers["x-twilio-signature"] = sign(url, fields, token)
    all_headers.update({k.lower(): v for k, v in (headers or {}).items()})
    now = time.time() if epoch is None else epoch
    return {
        "version": "2.0",
        "routeKey": f"{method} {ROUTE_PATH}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": domain.split(".", 1)[0],
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "54.172.60.0",
                "userAgent": "TwilioProxy/1.1",
            },
            "requestId": request_id or uuid.uuid4().hex[:16],
            "routeKey": f"{method} {ROUTE_PATH}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": base64.b64encode(form_body.encode()).decode() if base64_body else form_body,
        "isBase64Encoded": base64_body,
    }
