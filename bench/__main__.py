"""Run every benchmark and print its tables: python -m bench [ingest ...]."""

from __future__ import annotations

import subprocess
import sys
import warnings

from bench import events, ingest, retry

SUITES = {"ingest": ingest.run, "retry": retry.run, "events": events.run}


def main(argv: list[str]) -> int:
    warnings.filterwarnings("ignore", message="Tried to parse AWS")
    names = argv or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(SUITES)}")
        return 2
    if len(names) == 1:
        print(SUITES[names[0]]())
        return 0
    for name in names:  # each in a fresh interpreter: no client or cache outlives its suite
        result = subprocess.run([sys.executable, "-m", "bench", name], check=False)
        if result.returncode:
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
