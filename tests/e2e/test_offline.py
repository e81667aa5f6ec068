"""The offline stack end to end: a small seeded scenario through the real handlers, each in its
own process, against moto and the Twilio simulator; the report's invariants must hold."""

from __future__ import annotations

import http.client
import json
import shlex
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from redeliver.policy import DEFAULT_POLICY_DOCUMENT, RetryPolicy
from tools import offline
from tools.moto_server import free_port
from tools.webhook_emitter import Mix, Stats


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[offline.Offline]:
    with offline.running(free_port(), tmp_path_factory.mktemp("offline"), seed=3) as running:
        yield running


@pytest.mark.slow
def test_a_seeded_scenario_keeps_every_invariant(stack: offline.Offline) -> None:
    mix = Mix(failure_rate=0.4, retry_success=0.5, duplicate_rate=0.2, reorder_rate=0.3)
    report = offline.run_scenario(stack, 40, mix, seed=3, timeout=90, progress=False, rate=100)
    assert report.violations == []
    assert report.api_answers == {200: report.webhooks.sent}
    assert report.dlq == 0
    assert report.retries_sent > 0  # the mix makes failures; the default policy retries them
    assert report.gave_up  # and gives some up (30005, or max attempts)
    assert sum(report.receipts.values()) >= 40
    # Every message the simulator created is a retry, one per (root, attempt).
    markers = [json.loads(m["attributes"])["redeliver"] for m in stack.sim.created]
    assert len({(m["root"], m["attempt"]) for m in markers}) == len(markers) == report.retries_sent
    assert "held   exactly one new message per attempt" in report.render()
    assert "every invariant held" in report.render()


@pytest.mark.slow
def test_the_local_api_answers_a_signed_curl_and_rejects_an_unsigned_one(
    stack: offline.Offline,
) -> None:
    command = next(
        line
        for line in offline.serve_instructions(stack).splitlines()
        if line.strip().startswith("curl")
    )
    words = shlex.split(command)
    signature = words[words.index("-H") + 1].split(": ", 1)[1]
    fields = dict(w.split("=", 1) for w in words[words.index("--data-urlencode") + 1 :: 2])
    body = urlencode(fields)
    port = int(stack.api.url.rsplit(":", 1)[1])
    for headers, expected in (({"X-Twilio-Signature": signature}, 200), ({}, 403)):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request(
            "POST",
            "/twilio/delivery-receipts",
            body,
            {"Content-Type": "application/x-www-form-urlencoded", **headers},
        )
        assert connection.getresponse().status == expected


@pytest.mark.slow
def test_the_load_test_sends_bounded_signed_webhooks(
    stack: offline.Offline,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What --target does to a deployed stack, aimed at the local API instead."""
    before = sum(stack.api.answers.values())
    url = stack.api.url + "/twilio/delivery-receipts"
    assert offline.load_test(url, stack.token, 10, rate=50, mix=Mix(), seed=5) == 0
    sent = sum(stack.api.answers.values()) - before
    assert 10 <= sent <= 40  # 2-3 receipts a message, a few duplicates: bounded
    assert "answers {200: " in capsys.readouterr().out
    assert offline.load_test(url, "wrong-token", 2, rate=50, mix=Mix(), seed=6) == 1


def test_a_report_with_a_broken_invariant_says_so() -> None:
    report = offline.Report(
        1,
        1.0,
        Stats(),
        Counter({200: 1}),
        checks=[offline.Check("every failure decided", ["failure of IMx left without a decision"])],
    )
    text = report.render()
    assert "BROKEN every failure decided" in text
    assert "FAILED: 1 invariant(s) broken" in text
    assert offline.exit_code(report) == 1


def test_the_command_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--failure-rate", "2"],
        ["--messages", "-1"],
        ["--target", "https://example.invalid/x"],
    ):
        with pytest.raises(SystemExit) as exit_:
            offline.main(argv)
        assert exit_.value.code == 2
    assert "TWILIO_AUTH_TOKEN" in capsys.readouterr().err


def test_a_busy_port_is_said_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as exit_:
            offline.main(["--port", str(taken.getsockname()[1])])
    assert exit_.value.code == 2
    assert "is in use" in capsys.readouterr().err


def test_the_offline_policy_is_valid_and_keeps_the_default_rules() -> None:
    policy = RetryPolicy.parse(offline.OFFLINE_POLICY)
    default = RetryPolicy.parse(DEFAULT_POLICY_DOCUMENT)
    assert [(r.codes, r.action) for r in policy.rules] == [
        (r.codes, r.action) for r in default.rules
    ]


def test_workdir_is_ignored_by_git() -> None:
    assert ".offline/" in (Path(offline.ROOT) / ".gitignore").read_text()
