"""One rule for every command's exit code (redeliver_cli.arguments): a command line that is wrong
whatever the stack holds is a usage error, 2, with the command's usage (as argparse answers); a
well-formed command that cannot do what it was asked is 1, with `error: ...`. Never a traceback.

Every command has its cases here: a command added to the CLI without them fails to collect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redeliver_cli import main as cli
from tests.cli.test_entry_point import COMMANDS

IM = "IM" + "0" * 32
IS = "IS" + "0" * 32
USAGE, FAILED = 2, 1

# (argv after the command name, exit code); the stack is `nope` (moto holds none): what passes
# the usage checks then fails operationally. {valid}, {invalid}, {missing}: policy documents.
CASES: dict[str, list[tuple[list[str], int]]] = {
    "status": [
        (["--recent", "0"], USAGE),
        (["--scan-pages", "-1"], USAGE),
        (["--scan-pages", "many"], USAGE),
        ([], FAILED),
    ],
    "trace": [([], USAGE), (["IMnotasid"], USAGE), (["SM123"], USAGE), ([IM], FAILED)],
    "stats": [
        (["--hours", "-1"], USAGE),
        (["--hours", "0"], USAGE),
        (["--hours", "soon"], USAGE),
        ([], FAILED),
    ],
    "redrive": [(["--wait-seconds", "-5"], USAGE), (["--yes"], FAILED)],
    "configure-webhook": [([], USAGE), (["IS123"], USAGE), ([IS, "--dry-run"], FAILED)],
    "reconcile": [
        ([], USAGE),
        (["IMnotasid", "--dry-run"], USAGE),
        ([IM, "--stuck-for", "2h"], USAGE),
        (["--stuck-for", "soon"], USAGE),
        ([IM, "--dry-run"], FAILED),
    ],
    "policy": [
        (["check"], USAGE),
        (["validate", "{valid}"], USAGE),
        (["check", "{valid}", "--at", "2026-06-02T15:00:00"], USAGE),
        (["check", "{valid}", "--retention-days", "0"], USAGE),
        (["check", "{valid}", "--to", "hello"], USAGE),  # as suppressions refuses it
        (["check", "{valid}", "--to", "2125550100"], USAGE),
        (["check", "{missing}"], FAILED),
        (["check", "{invalid}"], FAILED),
    ],
    "suppressions": [
        (["check"], USAGE),
        (["lift", "+12125550100"], USAGE),
        (["check", "2125550100"], USAGE),
        (["check", "whatsapp:+12125550100"], USAGE),
        (["check", "+12125550100"], FAILED),
    ],
    "send-receipt": [
        ([], USAGE),
        (["--status", "undelivered", "--error-code", "soon"], USAGE),
        (["--status", "undelivered", "--message", "IMnotasid"], USAGE),
        (["--status", "sent", "--at", "2026-06-02T15:00:00"], USAGE),
        (["--status", "undelivered", "--error-code", "30003"], FAILED),
    ],
    "smoke": [
        (["--service", "IS123"], USAGE),
        (["--service", IS, "--service", "CH" + "0" * 32], USAGE),
        (["--service"], USAGE),
        ([], FAILED),
        (["--service", IS, "--url", "http://127.0.0.1:9/twilio/delivery-receipts"], FAILED),
    ],
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param((command, argv, code), id=" ".join([command, *argv]))
        for command in COMMANDS
        for argv, code in CASES[command]
    ],
)
def test_usage_errors_exit_2_and_failures_exit_1(
    aws: None,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    case: tuple[str, list[str], int],
) -> None:
    command, argv, code = case
    valid = tmp_path / "valid.json"
    valid.write_text(json.dumps({"rules": [{"codes": "*", "action": "retry", "delays": [60]}]}))
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"rules": [{"codes": [63016], "action": "template"}]}))
    files = {"valid": valid, "invalid": invalid, "missing": tmp_path / "absent.json"}
    argv = [a.format(**files) if a.startswith("{") else a for a in argv]
    try:
        answer = cli.main(["--stack", "nope", command, *argv])
    except SystemExit as exit_:
        answer = exit_.code  # argparse's own usage errors
    captured = capsys.readouterr()
    assert answer == code, captured
    assert "Traceback" not in captured.err
    if code == USAGE:
        assert captured.err.startswith(f"usage: redeliver {command}"), captured.err
        assert f"redeliver {command}: error: " in captured.err
    else:
        assert captured.err.startswith("error: "), captured.err
