"""`make deploy POLICY=file`: a checked retry policy file as `sam deploy`'s parameter override.

`sam deploy --parameter-overrides` reads `Key=Value` pairs separated by spaces, so a JSON
document cannot go in as it is: its spaces and quotes split it. A value in double quotes, with
each inner double quote escaped, comes through whole; a backslash does not (sam's parser keeps
the escape), so a document whose JSON needs one (a quote or a newline inside a string) is refused
with the reason, rather than deployed changed. The override is checked with sam's own parser.

Usage: python -m tools.policy_override FILE [--retention-days N]  (prints the override)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from redeliver.domain.policy_parse import PolicyError, parse_policy
from redeliver.settings import RECEIPT_RETENTION_DAYS

PARAMETER = "RetryPolicy"


class OverrideError(ValueError):
    """The file cannot be deployed as a parameter override (the reason says why)."""


def override(document: str, retention_days: int = RECEIPT_RETENTION_DAYS) -> str:
    """`RetryPolicy="…"` for `--parameter-overrides`, or OverrideError naming the problem."""
    try:
        parse_policy(document, retention_days=retention_days)
    except PolicyError as error:
        raise OverrideError(f"invalid policy: {error}") from error
    compact = json.dumps(json.loads(document), separators=(",", ":"), ensure_ascii=False)
    if "\\" in compact:
        raise OverrideError(
            "the policy's JSON needs a backslash (a quote, a backslash or a control character "
            "inside a string): sam deploy's --parameter-overrides cannot carry it; rephrase it"
        )
    value = f'{PARAMETER}="{compact.replace(chr(34), chr(92) + chr(34))}"'
    if _as_sam_reads_it(value) != compact:
        raise OverrideError("sam deploy would not read the policy back as written")
    return value


def _as_sam_reads_it(value: str) -> str | None:
    # sam's own parser (imported here: only this check needs the SAM CLI); it ships no types.
    from samcli.cli.types import CfnParameterOverridesType  # type: ignore[import-untyped]  # noqa: PLC0415

    parsed = CfnParameterOverridesType().convert([value], None, None)
    read = parsed.get(PARAMETER) if isinstance(parsed, dict) else None
    return read if isinstance(read, str) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.policy_override", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--retention-days", type=int, default=RECEIPT_RETENTION_DAYS)
    args = parser.parse_args(argv)
    try:
        print(override(args.file.read_text(encoding="utf-8"), args.retention_days))
    except (OSError, OverrideError) as error:
        print(f"{args.file}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
