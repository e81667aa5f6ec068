"""`redeliver --endpoint-url http://127.0.0.1:PORT` against moto in server mode, as an operator
runs it beside `make serve`: from a shell with no AWS region and no credentials configured."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from redeliver_cli import main as cli
from redeliver_cli.endpoint import DUMMY_KEY, is_loopback, use_endpoint
from redeliver_cli.smoke import MARKS
from tools.moto_server import FAKE_CREDENTIALS, moto_server
from tools.stack import DeployedStack, deploy

ROOT = Path(__file__).resolve().parents[2]
STACK = "redeliver-local"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, DeployedStack]]:
    """moto on loopback in its own process, with the template deployed into it."""
    with moto_server() as endpoint, pytest.MonkeyPatch.context() as patch:
        for name, value in {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
            patch.setenv(name, value)
        with contextlib.redirect_stderr(io.StringIO()):  # moto's warnings on skipped resources
            deployed = deploy(STACK)
        yield endpoint, deployed


def bare_shell(home: Path, **extra: str) -> dict[str, str]:
    """An environment with no AWS setting at all: no region, no credentials, no profile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(home),
        AWS_CONFIG_FILE=str(home / "absent-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "absent-credentials"),
        PYTHONPATH=f"{ROOT / 'layers/common'}{os.pathsep}{ROOT}",
        **extra,
    )
    return env


def redeliver(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redeliver_cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=120,
    )


def test_a_loopback_endpoint_needs_no_region_and_no_credentials(
    served: tuple[str, DeployedStack], tmp_path: Path
) -> None:
    endpoint, _ = served
    env = bare_shell(tmp_path)
    common = ("--endpoint-url", endpoint, "--stack", STACK)
    done = redeliver(env, *common, "trace", "IM" + "0" * 32)
    assert "NoRegionError" not in done.stderr
    assert "NoCredentialsError" not in done.stderr
    assert (done.returncode, done.stderr.strip()) == (
        1,
        f"error: no record of IM{'0' * 32} in {served[1].outputs['ReceiptsTableName']} "
        "(unknown, or past its TTL)",
    )
    done = redeliver(env, *common, "stats")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.startswith(f"{STACK}, last 24 h")


def test_a_configured_region_is_kept(served: tuple[str, DeployedStack], tmp_path: Path) -> None:
    """The defaults fill only what is missing: moto keeps the stack in us-east-1, so a region
    configured elsewhere does not find it, and says so."""
    endpoint, _ = served
    env = bare_shell(tmp_path, AWS_DEFAULT_REGION="eu-west-1")
    done = redeliver(env, "--endpoint-url", endpoint, "--stack", STACK, "stats")
    assert done.returncode == 1
    assert f"stack '{STACK}' not found" in done.stderr


def test_redrive_without_a_move_task_points_to_by_hand(
    served: tuple[str, DeployedStack], tmp_path: Path
) -> None:
    """moto's server answers StartMessageMoveTask with a 500 and an HTML page: said as what it
    means, never the page; --by-hand then moves the job."""
    endpoint, deployed = served
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", endpoint)
        for name, value in FAKE_CREDENTIALS.items():
            patch.setenv(name, value)
        boto3.client("sqs").send_message(
            QueueUrl=deployed.outputs["RetryDLQUrl"], MessageBody='{"n": 1}'
        )
    env = bare_shell(tmp_path, AWS_MAX_ATTEMPTS="1")  # the 500 once, not botocore's retries
    common = ("--endpoint-url", endpoint, "--stack", STACK, "redrive", "--yes")
    done = redeliver(env, *common)
    assert done.returncode == 1, done.stderr
    assert done.stdout == "RetryDLQ holds about 1 job(s).\n"
    assert "<html" not in done.stderr.lower()
    assert "Traceback" not in done.stderr
    assert "message move task is not available at this endpoint" in done.stderr
    assert "Run again with --by-hand" in done.stderr
    done = redeliver(env, *common, "--by-hand", "--wait-seconds", "1")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "Moved 1 job(s) back onto RetryQueue" in done.stdout


def test_smoke_says_the_alarm_check_cannot_run_against_moto_on_loopback(
    served: tuple[str, DeployedStack], tmp_path: Path
) -> None:
    """Even for a stack whose WebhookUrl moto could resolve (WebhookBaseUrl set): moto's
    CloudFormation creates no alarm, so against a loopback endpoint the check is skipped, with
    the reason, and never counted as passed or failed."""
    endpoint, _ = served
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
            patch.setenv(name, value)
        with contextlib.redirect_stderr(io.StringIO()):
            deploy("redeliver-domain", {"WebhookBaseUrl": "https://hooks.example.com"})
    done = redeliver(
        bare_shell(tmp_path),
        *("--endpoint-url", endpoint, "--stack", "redeliver-domain", "smoke"),
        *(
            "--url",
            "http://127.0.0.1:9/twilio/delivery-receipts",
            "--twilio-url",
            "http://127.0.0.1:9",
        ),
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    skipped = f"\n{MARKS['skipped']} the alarms exist: skipped: this check cannot run offline: "
    assert skipped + "moto's CloudFormation creates no AWS::CloudWatch::Alarm" in done.stdout
    assert "Twilio could not be reached (ConnectionError)" in done.stdout
    assert "Twilio must post to https://hooks.example.com/twilio/delivery-receipts" in done.stdout
    assert done.stderr.startswith("error: 2 of 7 checks failed: Twilio accepts")


def test_the_help_says_what_a_loopback_endpoint_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "the region defaults to us-east-1" in out
    assert "dummy credentials are used" in out


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:5000", True),
        ("http://127.0.0.2:5000", True),
        ("http://localhost:4566", True),
        ("http://[::1]:5000", True),
        ("https://dynamodb.us-east-1.amazonaws.com", False),
        ("http://10.0.0.5:4566", False),
        ("not a url", False),
    ],
)
def test_what_counts_as_loopback(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback


@pytest.mark.parametrize(
    "url",
    [
        "http://192.0.2.1\\@127.0.0.1:4566",  # urlparse: 127.0.0.1; urllib3: 192.0.2.1
        "http://user@127.0.0.1:4566",  # userinfo: moto needs none; refused, not parsed twice
        "http://localhost.evil.example:4566",
        "http://127.0.0.1.nip.io:4566",
        "http://127.0.0.1:4566@192.0.2.1",
    ],
)
def test_an_endpoint_that_connects_elsewhere_is_not_loopback(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loopback check read the host with urllib.parse, botocore connects with urllib3, and
    they disagree on a backslash before `@`: `http://HOST\\@127.0.0.1` passed as loopback (dummy
    credentials, the metadata service off) while every request went to HOST. No network here:
    where botocore connects is caught at the socket."""
    for name in [n for n in os.environ if n.startswith("AWS_")] + [
        "AWS_ENDPOINT_URL",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ]:
        monkeypatch.delenv(name, raising=False)  # and restored after use_endpoint set them
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert not is_loopback(url)
    use_endpoint(url, None)
    assert os.environ.get("AWS_ACCESS_KEY_ID") != DUMMY_KEY
