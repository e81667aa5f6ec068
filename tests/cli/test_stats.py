"""`redeliver stats`: its numbers add up."""

from __future__ import annotations

import ast
import re

import pytest

from redeliver_cli import main as cli
from tests.integration.retry_system import RetrySystem
from tools.stack import DeployedStack

CODES = (30001, 30003, 30004, 30005, 30006, 30007, 30008, 30034, 21610, 63016, 63024)


def test_the_error_codes_add_up_to_the_failures(
    system: RetrySystem, stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """More codes than the line names one by one (stats.TOP_CODES): the rest are summed on an
    `other` entry, never dropped."""
    for n, code in enumerate(CODES):
        for _ in range(1 + (n == 0)):  # 30001 twice: the most frequent, named first
            conversation, message = system.message()
            system.fail(conversation, message, code)
    capsys.readouterr()
    assert cli.main(["--stack", stack.name, "stats", "--hours", "100000"]) == 0
    out = capsys.readouterr().out
    [failures] = re.findall(r"^  failures    (\d+) ", out, flags=re.MULTILINE)
    [line] = re.findall(r"^  error codes (\{.*\})$", out, flags=re.MULTILINE)
    codes = ast.literal_eval(line)
    assert int(failures) == len(CODES) + 1 == sum(codes.values())
    assert next(iter(codes)) == "30001"
    named = [code for code in codes if code.isdigit()]
    assert len(named) < len(CODES)  # not all named: the rest on one entry
    assert codes[f"other ({len(CODES) - len(named)} codes)"] == len(CODES) - len(named)
