"""The Makefile's environment: what each target's commands run with."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def region_seen_by(target: str, region: str | None, venv: Path) -> str:
    """The AWS_DEFAULT_REGION that `target`'s command sees: the venv's tools (sam, python) are
    stand-ins that print it, and the prerequisites are taken as made (-o), so nothing runs."""
    env = {k: v for k, v in os.environ.items() if k not in {"AWS_DEFAULT_REGION", "MAKEFLAGS"}}
    if region is not None:
        env["AWS_DEFAULT_REGION"] = region
    result = subprocess.run(
        ["make", "-s", "-o", "setup", "-o", "build", f"VENV={venv}", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_deploy_keeps_the_configured_region_and_offline_targets_get_one(tmp_path: Path) -> None:
    """`sam deploy` must deploy where the AWS CLI is configured (the profile's region, where the
    secret was made): the Makefile sets a region only for the offline targets, and only if unset."""
    (tmp_path / "bin").mkdir()
    for tool in ("sam", "python"):
        stand_in = tmp_path / "bin" / tool
        stand_in.write_text('#!/bin/sh\necho "[$AWS_DEFAULT_REGION]"\n')
        stand_in.chmod(0o755)
    assert region_seen_by("deploy", None, tmp_path) == "[]"
    assert region_seen_by("deploy", "eu-west-1", tmp_path) == "[eu-west-1]"
    assert region_seen_by("offline", None, tmp_path) == "[us-east-1]"
    assert region_seen_by("offline", "eu-west-1", tmp_path) == "[eu-west-1]"
