"""The sample `make offline` report the README shows is a real run's, in the shape a run prints
today: README.md's copy is docs/sample-report.txt (`make sample-report` writes both), and a small
real run prints the same lines (labels, invariants) in the same order. Speed-dependent numbers
are never compared."""

from __future__ import annotations

import re

import pytest

from tests.docs.sample_report import FIRST_LINE, README, SAMPLE, readme_block, run_offline
from tools.moto_server import free_port

INVARIANT = re.compile(r"^\s+(held|BROKEN|open)\s+(.*?)(?: \(|$)")
NOTE = re.compile(r"^\s+- ")


def shape(report: str) -> tuple[list[str], list[str]]:
    """(the report's line labels in order, each once; its invariants) — the notes, which vary
    with what a run met, count as one label."""
    labels: list[str] = []
    invariants: list[str] = []
    for line in report.splitlines():
        if FIRST_LINE.match(line):
            label = "Redeliver offline:"
        elif match := INVARIANT.match(line):
            invariants.append(match.group(2))
            continue
        elif NOTE.match(line):
            continue
        else:
            label = re.split(r"\s{2,}|\s(?=[\d{])", line.strip(), maxsplit=1)[0]
        if label not in labels:
            labels.append(label)
    return labels, invariants


def test_the_readme_shows_the_sample_report() -> None:
    assert readme_block(README.read_text()) == SAMPLE.read_text(), "run make sample-report"


def test_the_sample_is_a_settled_run_that_held_every_invariant() -> None:
    lines = SAMPLE.read_text().splitlines()
    assert FIRST_LINE.match(lines[0])
    assert lines[-1] == "  result          every invariant held"
    labels, invariants = shape(SAMPLE.read_text())
    assert {"webhooks", "receipts", "actions", "invariants", "result"} <= set(labels)
    assert "exactly one new message per attempt" in invariants


def test_the_shape_reader_reads_labels_and_invariants() -> None:
    report = (
        "Redeliver offline: 3 messages in 1.0 s\n"
        "  webhooks        7 sent\n"
        "  failure→resend  p50 1 ms\n"
        "  failure→resend  1 resend(s) stored before\n"
        "  lost last status 2 receipt(s)\n"
        "  notes\n"
        "    - anything\n"
        "  invariants\n"
        "    held   no 5xx for valid input (7 answers)\n"
        "  result          every invariant held\n"
    )
    assert shape(report) == (
        [
            "Redeliver offline:",
            "webhooks",
            "failure→resend",
            "lost last status",
            "notes",
            "invariants",
            "result",
        ],
        ["no 5xx for valid input"],
    )


@pytest.mark.slow
def test_a_real_run_prints_the_samples_lines() -> None:
    code, report = run_offline("--messages", "40", "--seed", "7", "--port", str(free_port()))
    assert code == 0, report
    assert shape(report) == shape(SAMPLE.read_text()), "run make sample-report"
