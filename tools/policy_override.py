"""`make deploy POLICY=file`: a checked retry policy file as `sam deploy`'s parameter override.

`sam deploy --parameter-overrides` reads `Key=Value` pairs separated by spaces, so a JSON
document cannot go in as it is: its spaces and quotes split it. A value in double quotes, with
each inner double quote escaped, comes through whole; a backslash does not (sam's parser keeps
the escape), so a document whose JSON needs one (a quote or a newline inside a string) is refused
with the reason, rather than deployed changed. The override is checked with sam's own parser.

It also carries every parameter samconfig.toml saved (an earlier guided deploy's answers):
`--parameter-overrides` on the command line replaces samconfig's `parameter_overrides` as a
whole (click: a given option is not merged with its default_map), so with RetryPolicy alone
every guided prompt offered the template's default (TwilioSecretArn, WebhookBaseUrl, ...), and
Enter deployed them. Each is quoted as sam's guided mode saves it (GuidedConfig).

Usage: python -m tools.policy_override FILE [--retention-days N] [--samconfig PATH]
(prints the override)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path

from redeliver.domain.policy_parse import PolicyError, parse_policy
from redeliver.settings import RECEIPT_RETENTION_DAYS

PARAMETER = "RetryPolicy"


class OverrideError(ValueError):
    """The file cannot be deployed as a parameter override (the reason says why)."""


def override(
    document: str,
    retention_days: int = RECEIPT_RETENTION_DAYS,
    saved: Mapping[str, str] | None = None,
) -> str:
    """`RetryPolicy="…"` for `--parameter-overrides`, after the `saved` ones (samconfig's,
    `saved_overrides`) it keeps, or OverrideError naming the problem."""
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
    wanted = {**{k: v for k, v in (saved or {}).items() if k != PARAMETER}, PARAMETER: compact}
    value = " ".join(f"{key}={_quoted(text)}" for key, text in wanted.items())
    if _as_sam_reads_it(value) != compact:
        raise OverrideError("sam deploy would not read the policy back as written")
    if _parsed(value) != wanted:
        raise OverrideError(
            "sam deploy would not read back the parameters samconfig.toml saved (a value "
            "with a backslash): give them with the policy by hand"
        )
    return value


def _quoted(text: str) -> str:
    """A value in double quotes, each inner one escaped: as sam's guided mode saves it."""
    return '"' + text.replace('"', '\\"') + '"'


def saved_overrides(samconfig: Path) -> dict[str, str]:
    """The parameter overrides `samconfig` holds for `sam deploy` (default environment), as sam
    reads them; none when there is no such file."""
    if not samconfig.is_file():
        return {}
    from samcli.lib.config.samconfig import SamConfig  # type: ignore[import-untyped]  # noqa: PLC0415

    config = SamConfig(str(samconfig.parent), filename=samconfig.name)
    saved = config.get_all(["deploy"], "parameters").get("parameter_overrides")
    return _parsed(saved) if saved else {}


def _parsed(value: object) -> dict[str, str]:
    # sam's own parser (imported here: only this check needs the SAM CLI); it ships no types.
    from samcli.cli.types import CfnParameterOverridesType  # type: ignore[import-untyped]  # noqa: PLC0415

    parsed = CfnParameterOverridesType().convert(
        value if isinstance(value, list) else [value], None, None
    )
    return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def _as_sam_reads_it(value: str) -> str | None:
    return _parsed(value).get(PARAMETER)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.policy_override", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--retention-days", type=int, default=RECEIPT_RETENTION_DAYS)
    parser.add_argument("--samconfig", type=Path, default=Path("samconfig.toml"))
    args = parser.parse_args(argv)
    try:
        saved = saved_overrides(args.samconfig)
        print(override(args.file.read_text(encoding="utf-8"), args.retention_days, saved))
    except (OSError, OverrideError) as error:
        print(f"{args.file}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
