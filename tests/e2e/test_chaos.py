"""make chaos, small: the offline stack under Twilio faults, killed containers, duplicated,
reordered and forged webhooks, two Conversation Services; the report's invariants must hold, and
a broken one must fail the run."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from tools.chaos.cli import main
from tools.chaos.config import Chaos, ChaosConfig, TwilioFaults, tuning
from tools.chaos.kills import ChaosKills
from tools.chaos.report import recheck
from tools.chaos.run import run as chaos_run
from tools.chaos.twilio import fault_counts
from tools.moto_server import free_port
from tools.offline.cli import exit_code
from tools.offline.report import Report
from tools.offline.stack import Offline, running
from tools.stack import ROOT
from tools.webhook_emitter import Mix

CONFIG = ChaosConfig(
    messages=40,
    seed=11,
    rate=40,
    timeout=540,  # high fault rates: an ambiguous create waits out a stale claim (52 s) per try
    mix=Mix(
        failure_rate=0.5, retry_success=0.5, duplicate_rate=0.3, reorder_rate=0.3, lose_rate=0.1
    ),
    faults=TwilioFaults(
        throttled=0.1, error_before=0.1, error_after=0.1, timeout_after=0.1, refused=0.05
    ),
    kill_ingest=3,
    kill_retry=2,
    forged=9,
    second_service=0.5,
    sweep_every=2,
    reconcile_every=2,
    # Ingest: once before its write (the webhook is lost), twice after it and before the enqueue
    # (stored, no job: the sweeper's case). The retry worker: before its first call, and later.
    kill_points={
        # (before its write by name: in a new container AWS call 1 is the secret's read, which a
        # forged webhook makes too: a kill there would be a forged one's 500, not a lost webhook)
        "IngestFunction": ("dynamodb.UpdateItem", "sqs.SendMessage", "sqs.SendMessage"),
        "RetryFunction": (1, 4),
    },
)


@dataclass
class Run:
    stack: Offline
    state: Chaos
    report: Report


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("chaos")
    with running(free_port(), workdir, CONFIG.seed, tuning(CONFIG)) as stack:
        state, report = chaos_run(stack, CONFIG, progress=False)
        print(report.render("Redeliver chaos"))  # in the test's output when it fails
        yield Run(stack, state, report)


@pytest.mark.slow
def test_a_small_chaos_run_settles_and_keeps_every_invariant(
    run: Run,
) -> None:
    assert run.report.settlement.settled, run.report.unsettled
    assert run.report.violations == []
    assert exit_code(run.report) == 0
    names = [check.name for check in run.report.checks]
    assert names == [
        "exactly one new message per attempt",
        "every failure decided or visible in the DLQ",
        "each resend as its action says",
        "no new message in a group conversation",
        "no phone number in any function's log",
        "one outcome event per recorded decision, none with a number",
        "no 5xx for valid input but the injected kills",
        "nothing stored for forged input",
        "every fault asked for was injected",
    ]
    text = run.report.render("Redeliver chaos")
    assert "result          every invariant held" in text
    assert run.report.retries_sent > 0


@pytest.mark.slow
def test_the_faults_asked_for_were_injected(run: Run) -> None:
    assert run.state.missing == []
    assert sum(fault_counts(run.stack.sim).values()) > 0
    kills = Counter(k.function for k in run.stack.runtime.kills)
    assert kills == {"IngestFunction": 3, "RetryFunction": 2}
    # Both services carried retries: every call went to the receipt's own service.
    assert {m["chat_service_sid"] for m in run.stack.sim.created} == set(run.state.services)
    assert len(run.state.services) == 2


@pytest.mark.slow
def test_a_killed_ingest_is_a_lost_webhook_and_a_kill_after_the_write_is_swept(
    run: Run,
) -> None:
    emitter = run.stack.emitter
    assert emitter is not None
    ingest_kills = [k for k in run.stack.runtime.kills if k.function == "IngestFunction"]
    # Every kill is one 500 from API Gateway and one webhook Twilio will not resend; no more.
    assert sum(n for s, n in run.stack.api.answers.items() if s >= 500) == len(ingest_kills)
    # A killed onMessageAdded (TrackMessages) is lost too, kept apart from the receipts' webhooks.
    lost = [*emitter.lost, *emitter.added_lost]
    assert len(lost) == len(ingest_kills)
    assert sorted(f"webhook {f['MessageSid']}" for f in lost) == sorted(
        " ".join(k.event.split()[:2]) for k in ingest_kills
    )
    before_write = [k for k in ingest_kills if "before dynamodb.UpdateItem" in k.where]
    after_write = [k for k in ingest_kills if "SendMessage" in k.where]
    assert before_write
    assert after_write  # stored with its outbox mark, never enqueued by ingest ...
    assert run.stack.sweeper is not None
    assert run.stack.sweeper.swept >= len(after_write)  # ... so the sweeper queued it
    assert "5xx webhooks    3 answered 5xx or not at all" in run.report.render()


@pytest.mark.slow
def test_webhooks_lost_on_the_way_are_counted_apart_and_their_failures_decided(run: Run) -> None:
    """Both causes of a lost webhook: the ingest kills (above) and losses on the way. Every
    failure Twilio holds is stored (its webhook, or the reconciler asking) and decided."""
    emitter = run.stack.emitter
    assert emitter is not None
    assert emitter.dropped  # lose_rate 0.1: some never sent
    assert not {id(f) for f in emitter.dropped} & {id(f) for f in emitter.lost}
    [check] = [c for c in run.report.checks if c.name.startswith("every failure decided")]
    assert check.held
    assert " 0 never learned" in check.evidence
    text = run.report.render("Redeliver chaos")
    assert "lost on the way (rate 0.1) " in text
    assert f", {len(emitter.lost)} answered 5xx or not at all" in text
    assert "reconciler      every 2 s:" in text


@pytest.mark.slow
def test_forged_webhooks_are_refused_and_leave_no_trace(run: Run) -> None:
    emitter = run.stack.emitter
    assert emitter is not None
    assert emitter.forged.answers == {403: CONFIG.forged}
    assert len(run.state.forged) == CONFIG.forged


# -- a broken invariant fails the run (these change the stack: they run last) ---------------------


@pytest.mark.slow
def test_a_double_send_breaks_the_run(run: Run) -> None:
    created = run.stack.sim.created
    double = {**created[0], "sid": "IM" + "d" * 32}
    created.append(double)
    try:
        again = recheck(run.stack, run.state, run.report)
    finally:
        created.remove(double)
    marker = json.loads(double["attributes"])["redeliver"]
    [check] = [c for c in again.checks if c.name == "exactly one new message per attempt"]
    assert check.violations == [f"2 messages sent for {marker['root']} attempt {marker['attempt']}"]
    assert exit_code(again) == 1
    assert "BROKEN exactly one new message per attempt" in again.render()


@pytest.mark.slow
def test_a_message_out_for_an_attempt_recorded_given_up_breaks_the_run(
    run: Run,
) -> None:
    """A give-up by a worker that did not hold the claim, as the checker sees it: a message
    went out, the attempt says given up."""
    created = run.stack.sim.created
    stray = {
        **created[0],
        "sid": "IM" + "e" * 32,
        "attributes": json.dumps({"redeliver": {"root": "IM" + "f" * 32, "attempt": 1}}),
    }
    created.append(stray)
    try:
        again = recheck(run.stack, run.state, run.report)
    finally:
        created.remove(stray)
    assert (
        f"{stray['sid']} went out for IM{'f' * 32} attempt 1, recorded as no attempt item"
        in (again.violations[0])
    )
    assert exit_code(again) == 1


@pytest.mark.slow
def test_a_stored_forgery_or_an_extra_5xx_breaks_the_run(run: Run) -> None:
    table = run.stack.stack.outputs["ReceiptsTableName"]
    dynamodb = boto3.client("dynamodb")
    key = {"pk": {"S": f"MSG#{run.state.forged[0]}"}, "sk": {"S": "RCPT#DY" + "0" * 32}}
    dynamodb.put_item(TableName=table, Item={**key, "status": {"S": "sent"}})
    run.stack.api.answers[502] += 1
    try:
        again = recheck(run.stack, run.state, run.report)
    finally:
        dynamodb.delete_item(TableName=table, Key=key)
        run.stack.api.answers[502] -= 1
    broken = {c.name for c in again.checks if not c.held}
    assert broken == {
        "nothing stored for forged input",
        "no 5xx for valid input but the injected kills",
    }
    assert exit_code(again) == 1


# -- the parts, without a stack ------------------------------------------------------------------


def test_kills_are_planned_from_the_seed_and_carried_to_the_next_invocation() -> None:
    plan = ChaosKills(3, {"IngestFunction": (2, 10)}, {"IngestFunction": (1, "sqs.Send")})
    armed = [plan.arm("IngestFunction") for _ in range(12)]
    first = armed.index(1)
    assert armed[:first] == [None] * first
    assert all(point == 1 for point in armed[first:])  # not fired: stays armed
    plan.killed("IngestFunction")
    assert plan.fired == {"IngestFunction": 1}
    later = [plan.arm("IngestFunction") for _ in range(12)]
    assert "sqs.Send" in later
    assert plan.arm("RetryFunction") is None
    again = ChaosKills(3, {"IngestFunction": (2, 10)}, {"IngestFunction": (1, "sqs.Send")})
    assert [again.arm("IngestFunction") for _ in range(12)] == armed


def test_the_command_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--throttled", "1.5"], ["--kill-retry", "-1"], ["--sweep-every", "0"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
    assert "--throttled must be between 0 and 1" in capsys.readouterr().err


def test_the_makefile_and_readme_explain_make_chaos() -> None:
    root = Path(ROOT)
    assert "chaos: setup ## " in (root / "Makefile").read_text()
    assert "make chaos" in (root / "README.md").read_text()
    readme = (root / "docs" / "offline.md").read_text()  # the README links it
    for flag in ("--throttled", "--kill-ingest", "--forged", "--second-service", "--lose-webhooks"):
        assert flag in readme
