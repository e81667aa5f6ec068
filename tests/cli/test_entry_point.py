"""The `redeliver` console script: installed from pyproject's entry point, it lists and documents
every command, answers a usage error with exit code 2, and imports nothing from tools/ (the offline
emulator, which does not ship)."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from redeliver_cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = (
    "status",
    "trace",
    "stats",
    "redrive",
    "configure-webhook",
    "reconcile",
    "policy",
    "suppressions",
    "send-receipt",
    "smoke",
)


def _usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main(list(argv))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: redeliver")
    return err


def test_the_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    listed = re.findall(r"^ {4}([a-z-]+) ", out, flags=re.MULTILINE)
    assert tuple(listed) == COMMANDS


def test_usage_errors_exit_2_and_say_what_is_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    assert "invalid choice: 'tarce'" in _usage_error(capsys, "tarce", "IM" + "0" * 32)
    assert "required: COMMAND" in _usage_error(capsys)
    assert "required: IM…" in _usage_error(capsys, "trace")
    assert "required: IS…" in _usage_error(capsys, "configure-webhook")
    assert "invalid choice: 'lift'" in _usage_error(capsys, "suppressions", "lift", "+1212")
    assert "not a duration like 45m" in _usage_error(capsys, "reconcile", "--stuck-for", "soon")


def test_the_cli_imports_nothing_from_tools_or_tests() -> None:
    for module in sorted((ROOT / "redeliver_cli").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] not in {"tools", "tests", "bench"}, (module, name)


def test_python_m_tools_cli_stays_an_alias(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"rules": [{"codes": "*", "action": "retry", "delays": [60]}]}))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers/common'}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-m", "tools.cli", "policy", "check", str(policy)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert f"{policy}: valid." in done.stdout


def _run_script(script: Path, *argv: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [str(script), *argv], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_built_package_installs_a_working_redeliver_script(tmp_path: Path) -> None:
    """What `pip install .` makes of pyproject.toml (a wheel, not the source tree): the script
    runs outside the repository, and both packages, with redeliver's subpackages, came along.
    Built from a copy, so that setuptools' build/ and egg-info stay out of the work tree."""
    source = tmp_path / "source"
    for part in ("pyproject.toml", "README.md", "redeliver_cli", "layers/common/redeliver"):
        if (ROOT / part).is_dir():
            shutil.copytree(
                ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            (source / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / part, source / part)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    packages = {p.parent.relative_to(target).as_posix() for p in target.rglob("__init__.py")}
    layers = {"redeliver/domain", "redeliver/adapters/dynamodb", "redeliver/usecases/retry/sending"}
    assert {"redeliver", "redeliver_cli", *layers} <= packages
    assert not packages & {"tools", "tests", "bench"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = _run_script(target / "bin" / "redeliver", "--help", env=env, cwd=elsewhere)
    assert "usage: redeliver" in out
    for command in COMMANDS:
        assert f"    {command} " in out
    where = _run_script(
        Path(sys.executable),
        "-c",
        "import redeliver.usecases.retry.sending, redeliver_cli.main;"
        " print(redeliver_cli.main.__file__)",
        env=env,
        cwd=elsewhere,
    )
    assert where.strip().startswith(str(target))


def test_the_venv_make_set_up_has_the_redeliver_script() -> None:
    """`make setup` installs this project into .venv (editable), after the lock; its stamp is
    newer than pyproject.toml once it has. Outside such a venv there is nothing to check."""
    stamp = Path(sys.prefix) / ".installed"
    if not stamp.exists() or stamp.stat().st_mtime < (ROOT / "pyproject.toml").stat().st_mtime:
        # CI runs `make test`, which brings the venv up to date first: there, this is a failure
        assert not os.environ.get("CI"), "CI's venv was not set up by `make setup`"
        pytest.skip("not run from a venv that `make setup` brought up to date")
    script = Path(sys.prefix) / "bin" / "redeliver"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = _run_script(script, "policy", "--help", env=env, cwd=Path(sys.prefix))
    assert out.startswith("usage: redeliver policy")
