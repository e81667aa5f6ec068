"""Write events/*.json: API Gateway events of signed onDeliveryUpdated webhooks.

    python -m tools.make_events        # rewrite events/
    python -m tools.make_events --check  # exit 1 if events/ differs from what this writes

Each is signed with tools.stack.TEST_AUTH_TOKEN for https://abc123.execute-api.us-east-1.amazonaws.com,
so `sam local invoke IngestFunction -e events/<name>.json` (with a secret holding that token) and
the tests accept them, and anything else rejects them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tools.apigw import http_api_event
from tools.samples import receipt_fields
from tools.stack import ROOT, TEST_AUTH_TOKEN

EVENTS = ROOT / "events"
EPOCH = 1_795_773_700.0  # 2026-11-27T10:01:40Z, after every DateUpdated below
SAMPLES = {
    "sent": receipt_fields("sent", updated="2026-11-27T10:00:01Z"),
    "delivered": receipt_fields("delivered", updated="2026-11-27T10:00:04Z"),
    "read": receipt_fields("read", updated="2026-11-27T10:00:30Z"),
    "undelivered-30003": receipt_fields(
        "undelivered", message=2, receipt=2, error_code=30003, updated="2026-11-27T10:00:06Z"
    ),
    "failed-30005": receipt_fields(
        "failed", message=3, receipt=3, error_code=30005, updated="2026-11-27T10:00:02Z"
    ),
}


def render() -> dict[Path, str]:
    files = {}
    for index, (name, fields) in enumerate(SAMPLES.items()):
        event = http_api_event(
            fields, token=TEST_AUTH_TOKEN, request_id=f"sample-{index:04d}", epoch=EPOCH
        )
        files[EVENTS / f"{name}.json"] = json.dumps(event, indent=2) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for path, text in render().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"events/ is stale ({', '.join(stale)}): run python -m tools.make_events")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
