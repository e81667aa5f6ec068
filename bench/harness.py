"""What the benchmarks share: fresh-interpreter timings, a Lambda-like venv, tables.

moto runs in a separate process (tools.moto_server) so that the CPU time a benchmark reads
(time.process_time) is the handler's own: serialising requests and parsing answers, but not
moto's work answering them.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tools.moto_server import FAKE_CREDENTIALS

ROOT = Path(__file__).resolve().parent.parent
PYTHONPATH = os.pathsep.join([str(ROOT / "layers" / "common"), str(ROOT)])
FAKE_AWS = {
    **FAKE_CREDENTIALS,
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_SERVICE_NAME": "redeliver-bench",
    "POWERTOOLS_METRICS_NAMESPACE": "Redeliver",
}


def figures_in_fresh_interpreter(
    code: str, env: dict[str, str], python: str = sys.executable
) -> list[float]:
    """Run the snippet in a new interpreter; it prints its figures (seconds) on its last line,
    space-separated (a handler's own log lines may come before)."""
    result = subprocess.run(
        [python, "-c", code], env=env, capture_output=True, text=True, check=False, cwd=ROOT
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return [float(figure) for figure in result.stdout.strip().splitlines()[-1].split()]


# A function's environment for an import: the settings exist, nothing is called.
COLD_ENV = {
    "TABLE_NAME": "t",
    "RETRY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q",
    "TWILIO_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
}
# Fresh interpreters per snippet. A cold start moves by 5-10 % from run to run on a shared
# machine (two cores, other work on them); the median of 15, interleaved, is steady to ~1-2 %.
COLD_REPEATS = 15


def lambda_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a fresh Lambda-like interpreter: fake credentials, a function's
    settings (COLD_ENV unless `extra` gives its own), the layer on the path."""
    return {
        "PATH": os.environ["PATH"],
        **FAKE_AWS,
        **COLD_ENV,
        **(extra or {}),
        "PYTHONPATH": PYTHONPATH,
    }


def interleaved(
    runs: list[Callable[[], list[float]]], repeats: int = COLD_REPEATS
) -> list[list[float]]:
    """Each run `repeats` times, round-robin so that drift on the machine hits all alike; the
    median of each figure each run printed: one list per run."""
    figures: list[list[list[float]]] = [[] for _ in runs]
    for _ in range(repeats):
        for n, run in enumerate(runs):
            figures[n].append(run())
    return [[median(list(column)) for column in zip(*per_run, strict=True)] for per_run in figures]


def cold_start(
    baseline_code: str, handler_code: str, repeats: int = COLD_REPEATS
) -> tuple[float, float]:
    """Median seconds of two snippets in fresh Lambda-like interpreters, interleaved so that
    drift on the machine hits both alike: (baseline, handler)."""
    env, python = lambda_env(), lambda_python()
    (baseline,), (handler,) = interleaved(
        [
            lambda: figures_in_fresh_interpreter(baseline_code, env, python),
            lambda: figures_in_fresh_interpreter(handler_code, env, python),
        ],
        repeats,
    )
    return baseline, handler


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    line = "  ".join("-" * w for w in widths)
    out = [f"\n{title}", "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


LAMBDA_VENV = ROOT / ".bench" / "lambda-venv"
_RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3")


def lambda_python() -> str:
    """A Python 3.13 with only what Lambda has: boto3 (pinned as in requirements-dev.txt) and the
    layer's requirements. The dev venv also holds sam-cli's awscrt and pyOpenSSL, which botocore
    would import, and the Lambda runtime does not have."""
    python = LAMBDA_VENV / "bin" / "python"
    pins = [
        line.strip()
        for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
        if line.split("==")[0].lower() in _RUNTIME_PACKAGES
    ]
    layer = ROOT / "layers/common/requirements.txt"
    wanted = "\n".join([*pins, layer.read_text()])
    marker = LAMBDA_VENV / "requirements.txt"
    if not python.exists() or not marker.exists() or marker.read_text() != wanted:
        interpreter = subprocess.run(
            [str(ROOT / "tools" / "python313")], capture_output=True, text=True, check=True
        ).stdout.strip()
        subprocess.run([interpreter, "-m", "venv", "--clear", str(LAMBDA_VENV)], check=True)
        # Two installs: the layer's file is hashed (pip's --require-hashes mode, all or nothing),
        # the runtime's boto3 pins are not; the layer's, after, verifies every file it installs.
        install = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*install, *pins], check=True, capture_output=True)
        subprocess.run(
            [*install, "--require-hashes", "-r", str(layer)], check=True, capture_output=True
        )
        marker.write_text(wanted)
    return str(python)
