"""What the retry handler's import leaves to first use (its cold start), and that
the deferred paths still work from a cold import.

Each test runs a fresh interpreter: in this one, other tests have imported everything already.
The time itself is measured in bench/retry.py, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    "PYTHONPATH": str(ROOT / "layers" / "common"),
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "TABLE_NAME": "t",
    "RETRY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q",
    "TWILIO_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
}


def fresh(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**ENV, **env},
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


IMPORT_HANDLER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", "functions/retry/app.py")
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
"""


def test_the_retry_handler_imports_neither_time_zones_nor_powertools_batch() -> None:
    # zoneinfo (quiet hours only), phonenumbers (a recipient's zone), asyncio and Powertools'
    # batch utility with every event class (~20 ms): none is needed by a default policy. Nor
    # ingest's signature checking: the retry worker records through redeliver.usecases.recorder.
    loaded = json.loads(
        fresh(
            IMPORT_HANDLER + "print(json.dumps([m for m in ('zoneinfo', 'phonenumbers', 'asyncio',"
            " 'aws_lambda_powertools.utilities.batch', 'redeliver.adapters.twilio.signature',"
            " 'aws_lambda_powertools.utilities.data_classes') if m in sys.modules]))"
        )
    )
    assert loaded == []


@pytest.mark.parametrize("function", ["retry", "ingest"])
def test_what_a_hot_handler_made_at_init_is_frozen_out_of_later_collections(function: str) -> None:
    # Else the records' allocations set off collections over every module and boto3 service
    # model loaded at init (bench retry: the first record's CPU; bench ingest: CPU per receipt).
    code = IMPORT_HANDLER.replace("functions/retry/", f"functions/{function}/")
    frozen = fresh(code + "import gc; print(gc.get_freeze_count())")
    assert int(frozen) > 10_000  # ~80 000 objects here


def test_a_policy_with_quiet_hours_imports_zoneinfo_when_it_is_parsed() -> None:
    policy = {
        "max_attempts": 3,
        "max_age_seconds": 86400,
        "quiet_hours": {"start": "21:00", "end": "08:00", "timezone": "America/New_York"},
        "rules": [{"codes": "*", "action": "retry", "delays": [60]}],
    }
    loaded = fresh(
        IMPORT_HANDLER + "print('zoneinfo' in sys.modules)", RETRY_POLICY=json.dumps(policy)
    )
    assert loaded == "True"


def test_quiet_hours_are_read_after_a_cold_import() -> None:
    # 03:00 UTC is 22:00 in New York (EST): quiet until 08:00 there, 13:00 UTC. A recipient's
    # zone comes from the number (phonenumbers, loaded then), a fixed one from the policy.
    out = fresh(
        """
import json, sys
from datetime import UTC, datetime
from redeliver.domain.policy_parse import parse_policy
before = [m for m in ("zoneinfo", "phonenumbers") if m in sys.modules]
rules = [{"codes": "*", "action": "retry", "delays": [60]}]
night = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
recipient = parse_policy({"quiet_hours": {"start": "21:00", "end": "08:00"}, "rules": rules})
fixed = parse_policy(
    {"quiet_hours": {"start": "21:00", "end": "08:00", "timezone": "America/New_York"},
     "rules": rules})
print(json.dumps({
    "before": before,
    "recipient": str(recipient.quiet_hours.until("whatsapp:+12125550100", night)),
    "fixed": str(fixed.quiet_hours.until(None, night)),
    "day": str(fixed.quiet_hours.until(None, night.replace(hour=15))),
}))
"""
    )
    assert json.loads(out) == {
        "before": [],
        "recipient": "2026-11-27 13:00:00+00:00",
        "fixed": "2026-11-27 13:00:00+00:00",
        "day": "None",
    }
