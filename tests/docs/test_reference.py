"""The reference pages against what they describe: every alarm of the template in
docs/operations.md, every parameter in docs/deploy.md, every metric the code counts by name in
docs/operations.md, the default policy in docs/policy.md as the code has it, and the worked
example (examples/policy.json) valid and the one docs/policy.md shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from redeliver.domain.policy import DEFAULT_POLICY_DOCUMENT
from redeliver_cli import main as cli
from tests.docs.markdown import ROOT, blocks
from tools.stack import load_template

DOCS = ROOT / "docs"
EXAMPLE = ROOT / "examples" / "policy.json"


def resources_of_type(kind: str) -> set[str]:
    return {n for n, r in load_template()["Resources"].items() if r["Type"] == kind}


def section(path: Path, heading: str) -> str:
    return path.read_text().split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def test_every_alarm_is_in_the_operations_alarm_table_and_nothing_else() -> None:
    alarms = resources_of_type("AWS::CloudWatch::Alarm")
    table = section(DOCS / "operations.md", "## Alarms")
    named = set(re.findall(r"`(\w+Alarm)`", table))
    families = re.findall(r"`\*(\w+Alarm)`", table)  # `*ThrottlesAlarm`
    covered = named | {a for a in alarms for f in families if a.endswith(f)}
    assert alarms - covered == set(), "alarms docs/operations.md does not describe"
    assert named - alarms == set(), "docs/operations.md names alarms the template lacks"


def test_every_parameter_is_in_the_deploy_parameter_table() -> None:
    parameters = set(load_template()["Parameters"])
    table = section(DOCS / "deploy.md", "## Parameters")
    named = set(re.findall(r"`(\w+)`", table))
    assert parameters - named == set(), "parameters docs/deploy.md does not describe"


def test_every_metric_counted_by_name_is_in_the_operations_page() -> None:
    code = "\n".join(p.read_text() for p in (ROOT / "layers/common/redeliver").rglob("*.py"))
    counted = set(re.findall(r"\bcount(?:_by|_each)?\(\s*\"(\w+)\"", code))
    assert {"Receipts", "UnknownStatus", "SweptFailures"} <= counted  # the reader reads
    text = (DOCS / "operations.md").read_text()
    assert {m for m in counted if f"`{m}`" not in text} == set()


def test_the_default_policy_shown_is_the_codes() -> None:
    default = section(DOCS / "policy.md", "## The default policy")
    [shown] = [json.loads(b.text) for b in blocks(DOCS / "policy.md") if b.text in default]
    assert shown == DEFAULT_POLICY_DOCUMENT


def test_the_worked_example_is_examples_policy_json() -> None:
    example = json.loads(EXAMPLE.read_text())
    worked = section(DOCS / "policy.md", "## A worked example")
    assert [json.loads(b.text) for b in blocks(DOCS / "policy.md") if b.text in worked] == [example]


def test_examples_policy_json_passes_redeliver_policy_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 11:00 in New York, the sample recipient's zone: outside the example's quiet hours
    assert cli.main(["policy", "check", str(EXAMPLE), "--at", "2026-06-02T15:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert f"{EXAMPLE}: valid." in out
    assert "63016  send Content template HXb5b62575e6e4ff6129ad7c8efe1f983e" in out
    assert "63024  send as SMS from +15550100000" in out
