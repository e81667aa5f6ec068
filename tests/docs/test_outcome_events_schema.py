"""README's outcome events schema against events/schemas/ (issue 19: the JSON schema of each
detail-type is in events/ and in the README): the same fields, patterns and actions."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from redeliver.domain.outcome_events import DETAIL_FIELDS, DetailType
from tests.docs.markdown import ROOT

SCHEMAS = {
    DetailType.RETRY_SENT: "retry-sent",
    DetailType.RETRY_RECOVERED: "retry-recovered",
    DetailType.GAVE_UP: "gave-up",
    DetailType.RECIPIENT_SUPPRESSED: "recipient-suppressed",
}
ROW = re.compile(r"^\| `(\w+)` \| (.+?) \| (.+?) \|$")


def section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("\n## Outcome events\n", 1)[1].split("\n## ", 1)[0]


def schema(detail_type: DetailType) -> dict[str, Any]:
    path = ROOT / "events" / "schemas" / f"{SCHEMAS[detail_type]}.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def readme_fields() -> dict[str, str]:
    """field -> its pattern cell, from README's field table."""
    return {m[1]: m[2] for line in section().splitlines() if (m := ROW.match(line))}


@pytest.mark.parametrize("detail_type", list(DetailType))
def test_the_readme_names_every_field_of_the_schema_with_its_pattern(
    detail_type: DetailType,
) -> None:
    document = schema(detail_type)
    fields = readme_fields()
    assert list(fields) == list(DETAIL_FIELDS) == document["required"]
    assert document["additionalProperties"] is False
    for name, prop in document["properties"].items():
        if name in ("action", "reason"):
            assert fields[name] == "per type, below"
        else:
            assert fields[name] == f"`{prop['pattern']}`", name


@pytest.mark.parametrize("detail_type", list(DetailType))
def test_the_readme_gives_each_types_schema_and_actions(detail_type: DetailType) -> None:
    document = schema(detail_type)
    action = document["properties"]["action"]
    allowed = [action["const"]] if "const" in action else [a for a in action["enum"] if a]
    [row] = [
        line for line in section().splitlines() if line.startswith(f"| `{detail_type.value}` |")
    ]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert f"(events/schemas/{SCHEMAS[detail_type]}.json)" in cells[1]
    assert re.findall(r"`(\w+)`", cells[2]) == allowed
