"""tools.policy_override: a policy file as sam deploy's --parameter-overrides, read back by sam."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from samcli.cli.types import CfnParameterOverridesType  # type: ignore[import-untyped]

from redeliver.domain.policy import DEFAULT_POLICY_DOCUMENT
from tools.policy_override import OverrideError, _as_sam_reads_it, override, saved_overrides


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


SAVED = (
    'TwilioSecretArn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:twilio-AbCdEf" '
    'WebhookBaseUrl="https://hooks.example.com" AlarmEmail="ops@example.com" RetryPolicy=""'
)


def test_a_policy_override_keeps_what_an_earlier_guided_deploy_saved(tmp_path: Path) -> None:
    """`sam deploy --guided --parameter-overrides X` takes the command line's overrides *instead
    of* samconfig.toml's (click: a given option replaces its default_map entry; seen with sam
    1.170: every prompt then offers the template's default, `Parameter TwilioSecretArn []`,
    `Parameter WebhookBaseUrl []`). Enter, as on every other deploy, then deployed an empty
    WebhookBaseUrl: ingest checked signatures against the execute-api URL and refused every
    webhook Twilio sent to the custom domain (403, never resent). The override must carry the
    saved parameters, and what sam saves after the guided run must read back whole."""
    from samcli.commands.deploy.guided_config import GuidedConfig  # type: ignore[import-untyped]
    from samcli.lib.config.samconfig import SamConfig  # type: ignore[import-untyped]

    config = tmp_path / "samconfig.toml"
    config.write_text(
        f"version = 0.1\n[default.deploy.parameters]\nparameter_overrides = {json.dumps(SAVED)}\n",
        encoding="utf-8",
    )
    document = json.dumps(DEFAULT_POLICY_DOCUMENT)
    value = override(document, saved=saved_overrides(config))
    read = CfnParameterOverridesType().convert([value], None, None)
    assert read["TwilioSecretArn"].endswith(":secret:twilio-AbCdEf")
    assert read["WebhookBaseUrl"] == "https://hooks.example.com"
    assert read["AlarmEmail"] == "ops@example.com"
    assert json.loads(read["RetryPolicy"]) == DEFAULT_POLICY_DOCUMENT

    # What the guided run saves (sam's own saver, each prompt answered with its default) is
    # what the next plain `sam deploy` reads back (sam's own reader and parser).
    samconfig = SamConfig(str(tmp_path))
    GuidedConfig(template_file="template.yaml", section="parameters")._save_parameter_overrides(
        ["deploy"],
        "default",
        {k: {"Value": v, "Hidden": False} for k, v in read.items()},
        samconfig,
    )
    samconfig.flush()
    again = SamConfig(str(tmp_path)).get_all(["deploy"], "parameters")["parameter_overrides"]
    assert CfnParameterOverridesType().convert([again], None, None) == read


def test_without_a_samconfig_the_override_is_the_policy_alone(tmp_path: Path) -> None:
    assert saved_overrides(tmp_path / "samconfig.toml") == {}
    value = override(json.dumps(DEFAULT_POLICY_DOCUMENT), saved={})
    assert list(CfnParameterOverridesType().convert([value], None, None)) == ["RetryPolicy"]
