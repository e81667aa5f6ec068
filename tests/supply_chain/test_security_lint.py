"""ruff's security rules (S, flake8-bandit) with every ignore justified where it stands: nothing
ignored in the code that ships, no stale per-folder ignore, a reason beside each.

`ruff check --select S --isolated` reads no configuration: what it reports is exactly what the
project's per-file ignores and `# noqa` comments let through, and is compared with them here.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("layers/", "functions/", "redeliver_cli/")
LINTED = ("layers", "functions", "redeliver_cli", "tools", "bench", "tests")
SECURITY = re.compile(r"^S\d+$")


def ruff_lint() -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lint: dict[str, object] = config["tool"]["ruff"]["lint"]
    return lint


def isolated_findings() -> list[tuple[str, str]]:
    ruff = Path(sys.executable).parent / "ruff"
    done = subprocess.run(
        [str(ruff), "check", "--isolated", "--select", "S", "--output-format", "json", *LINTED],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return sorted(
        {
            (Path(f["filename"]).resolve().relative_to(ROOT).as_posix(), f["code"])
            for f in json.loads(done.stdout)
        }
    )


def test_security_rules_are_on_and_not_ignored_globally() -> None:
    lint = ruff_lint()
    assert "S" in lint["select"]  # type: ignore[operator]
    assert not [c for c in lint.get("ignore", []) if c.startswith("S")]  # type: ignore[attr-defined]


def test_what_ruff_reports_without_config_is_exactly_what_the_per_file_ignores_allow() -> None:
    ignores: dict[str, list[str]] = ruff_lint()["per-file-ignores"]  # type: ignore[assignment]
    security = {glob: {c for c in codes if SECURITY.match(c)} for glob, codes in ignores.items()}
    assert all(codes != {"S"} for codes in security.values()), "name the codes, not all of S"
    used: set[tuple[str, str]] = set()
    for path, code in isolated_findings():
        assert not path.startswith(SHIPPED), f"{path}: {code} in shipped code"
        allowing = [
            g for g, codes in security.items() if fnmatch.fnmatch(path, g) and code in codes
        ]
        assert allowing, f"{path}: {code} is neither fixed nor ignored with a reason"
        used |= {(g, code) for g in allowing}
    declared = {(g, c) for g, codes in security.items() for c in codes}
    assert declared == used, f"stale ignores: {sorted(declared - used)}"


def test_every_security_ignore_says_why_beside_it() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[tool.ruff.lint.per-file-ignores]", 1)[1].split("\n[", 1)[0]
    for line in section.splitlines():
        if re.search(r'"S\d+"', line):
            assert re.search(r'"S\d+",\s+# \w', line), f"no reason beside: {line.strip()}"
    for root in LINTED:
        for path in sorted((ROOT / root).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"noqa:[^#]*\bS\d+", line):
                    assert re.search(r"noqa: [A-Z0-9, ]+ - \w", line), (
                        f"{path.relative_to(ROOT)}:{number}: a noqa of S without its reason"
                    )
