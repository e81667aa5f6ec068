"""The import rule of the `redeliver` package (pyproject.toml, [tool.importlinter]) can fail.

`make lint` runs `lint-imports` on the package as it is, where every contract is kept. Here it
runs on a copy of the package with one wrong-way import added, and must name the contract that
breaks: a check that cannot fail would hold nothing. The copy comes first on PYTHONPATH, ahead of
the editable install, so it is the copy that is analysed (the unaltered copy passes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "common" / "redeliver"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
LAYERS = "Layers: usecases above adapters above domain BROKEN"
PURE = "The domain imports no AWS or Twilio code BROKEN"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "redeliver", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_package_as_it_is_keeps_every_contract(copy: Path) -> None:
    done = lint_imports(copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # the domain reaching up into an adapter
        ("domain/receipts.py", "from redeliver.adapters.dynamodb import store", LAYERS),
        # an adapter reaching up into a use case
        ("adapters/sqs/retry_queue.py", "from redeliver.usecases import recorder", LAYERS),
        # the domain importing AWS code, directly ...
        ("domain/quiet_hours.py", "import boto3", PURE),
        # ... or through a module that does (observability imports aws_lambda_powertools)
        ("domain/policy.py", "from redeliver import observability", PURE),
    ],
)
def test_a_wrong_way_import_fails_lint_imports(
    copy: Path, module: str, line: str, broken: str
) -> None:
    path = copy / "redeliver" / module
    path.write_text(path.read_text() + f"\n{line}  # the wrong way\n")
    done = lint_imports(copy)
    assert done.returncode == 1, done.stdout + done.stderr
    assert broken in done.stdout, done.stdout
    assert f"redeliver.{module.removesuffix('.py').replace('/', '.')}" in done.stdout
