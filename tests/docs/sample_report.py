"""`make sample-report`: the README's sample `make offline` report, from a real run.

Runs `python -m tools.offline` (seed 7, the command's defaults otherwise; ARGS are passed on),
keeps its report (from the `Redeliver offline:` line on) and writes it to docs/sample-report.txt
and into README.md between the sample-report markers. A run that fails or does not settle writes
nothing. `tests/docs/test_sample_report.py` holds the sample to the shape a run prints.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "docs" / "sample-report.txt"
README = ROOT / "README.md"
SEED = "7"
BEGIN = "<!-- sample-report: begin (make sample-report writes this block) -->"
END = "<!-- sample-report: end -->"
FIRST_LINE = re.compile(r"^Redeliver offline: \d+ messages in [\d.]+ s$")


def run_offline(*args: str) -> tuple[int, str]:
    """(exit code, report) of one `python -m tools.offline` run."""
    done = subprocess.run(
        [sys.executable, "-m", "tools.offline", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'common'}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.splitlines()
    starts = [n for n, line in enumerate(lines) if FIRST_LINE.match(line)]
    report = "\n".join(lines[starts[0] :]) + "\n" if starts else done.stdout + done.stderr
    return done.returncode, report


def readme_block(text: str) -> str:
    """The report README.md shows between the markers (inside its code fence)."""
    inside = text.split(BEGIN, 1)[1].split(END, 1)[0]
    fenced = inside.strip().splitlines()
    assert fenced[0].startswith("```"), "the sample is one code block"
    assert fenced[-1] == "```", "the sample is one code block"
    return "\n".join(fenced[1:-1]) + "\n"


def with_block(text: str, report: str) -> str:
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    return f"{before}{BEGIN}\n```text\n{report}```\n{END}{after}"


def main(argv: list[str]) -> int:
    args = ["--seed", SEED, *argv]
    print(f"python -m tools.offline {' '.join(args)} ...", flush=True)
    code, report = run_offline(*args)
    if code != 0 or not FIRST_LINE.match(report.splitlines()[0]):
        print(report, file=sys.stderr)
        print(f"the run exited {code}: nothing written", file=sys.stderr)
        return 1
    SAMPLE.write_text(report)
    README.write_text(with_block(README.read_text(), report))
    print(report, end="")
    print(f"written: {SAMPLE.relative_to(ROOT)} and README.md's copy")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
