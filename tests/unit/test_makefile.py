"""The Makefile's deploy and offline targets: what their commands run with. The venv's tools are
stand-ins that print what they were given; prerequisites are taken as made (-o), so nothing is
installed, built or deployed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


STAND_IN = """#!/bin/sh
echo "region=[$AWS_DEFAULT_REGION]"
for a in "$@"; do echo "arg=$a"; done
"""


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    (tmp_path / "bin").mkdir()
    for tool in ("sam", "python"):
        stand_in = tmp_path / "bin" / tool
        stand_in.write_text(STAND_IN)
        stand_in.chmod(0o755)
    return tmp_path


def run(target: str, venv: Path, *variables: str, region: str | None = None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"AWS_DEFAULT_REGION", "MAKEFLAGS"}}
    if region is not None:
        env["AWS_DEFAULT_REGION"] = region
    result = subprocess.run(
        ["make", "-s", "-o", "setup", f"VENV={venv}", *variables, target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 or variables, result.stderr
    return [*result.stdout.splitlines(), *(["exit=1"] if result.returncode else [])]


def regions(lines: list[str]) -> set[str]:
    return {line.removeprefix("region=") for line in lines if line.startswith("region=")}


def test_a_deploy_keeps_the_configured_region_and_offline_targets_get_one(venv: Path) -> None:
    """`sam deploy` must deploy where the AWS CLI is configured (the profile's region, where the
    secret was made): the Makefile sets a region only for the offline targets, and only if unset."""
    assert regions(run("deploy", venv)) == {"[]"}
    assert regions(run("deploy", venv, region="eu-west-1")) == {"[eu-west-1]"}
    assert regions(run("offline", venv)) == {"[us-east-1]"}
    assert regions(run("offline", venv, region="eu-west-1")) == {"[eu-west-1]"}


def test_make_deploy_policy_checks_the_file_and_passes_it_as_the_parameter(
    venv: Path, tmp_path: Path
) -> None:
    policy = {"max_attempts": 2, "rules": [{"codes": "*", "action": "retry", "delays": [60]}]}
    good = tmp_path / "policy.json"
    good.write_text(json.dumps(policy, indent=2))
    lines = run("deploy", venv, f"PY={sys.executable}", f"POLICY={good}")
    assert "arg=--parameter-overrides" in lines
    [value] = [line for line in lines if line.startswith("arg=RetryPolicy=")]
    assert json.loads(value.removeprefix('arg=RetryPolicy="').removesuffix('"').replace('\\"', '"'))
    assert value.count("{") == 2  # compact, whole

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**policy, "max_attempts": 0}))
    lines = run("deploy", venv, f"PY={sys.executable}", f"POLICY={bad}")
    assert lines[-1] == "exit=1"
    assert not any(line.startswith("arg=") for line in lines)  # nothing built or deployed

    plain = run("deploy", venv)
    assert "arg=--parameter-overrides" not in plain
    assert "arg=--guided" in plain
