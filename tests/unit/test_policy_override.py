"""tools.policy_override: a policy file as sam deploy's --parameter-overrides, read back by sam."""

from __future__ import annotations

import json

import pytest

from redeliver.domain.policy import DEFAULT_POLICY_DOCUMENT
from tools.policy_override import OverrideError, _as_sam_reads_it, override


def test_the_default_and_a_template_policy_come_through_sams_parser_unchanged() -> None:
    template = {
        "rules": [
            {
                "codes": [63016],
                "action": "template",
                "content_sid": "HXb5b62575e6e4ff6129ad7c8efe1f983e",
                "content_variables": {"1": "We could not reach you: {body} (it's us)"},
            }
        ]
    }
    for document in (DEFAULT_POLICY_DOCUMENT, template):
        value = override(json.dumps(document, indent=2))
        assert json.loads(_as_sam_reads_it(value) or "") == document


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"rules": [{"codes": "*", "action": "retry", "delays": [-1]}]}, "invalid policy"),
        (
            {
                "rules": [
                    {
                        "codes": [63016],
                        "action": "template",
                        "content_sid": "HX" + "a" * 32,
                        "content_variables": {"1": 'say "hi"'},
                    }
                ]
            },
            "backslash",
        ),
    ],
)
def test_what_cannot_be_deployed_as_written_is_refused_with_the_reason(
    document: dict[str, object], reason: str
) -> None:
    with pytest.raises(OverrideError, match=reason):
        override(json.dumps(document))
