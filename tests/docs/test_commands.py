"""The commands README.md and docs/*.md show still work.

Commands are read from ```sh / ```bash / ```console / ```shell blocks (a console block's commands
are its `$ ` lines) and from inline code that starts with `make ` or `redeliver `. Then:

- `make TARGET`: the target is in the Makefile; `make help` and `make policy-check` with a file of
  this repository are run;
- `redeliver …`: the command line is parsed by the command's own parser (placeholders such as
  `IS…` or `+E164` replaced by values of their shape), so a renamed command or option fails; each
  subcommand's `--help`, and `redeliver policy check` on a file of this repository, are run;
- `python -m tools.X …`: every option it names is in that module's `--help`.

Nothing here needs AWS, Twilio or the network.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from redeliver_cli import main as cli
from tests.docs.markdown import ROOT, blocks, documents, inline_code

SHELL_BLOCKS = {"sh", "bash", "console", "shell"}
SID_PLACEHOLDER = re.compile(r"\b(AC|CH|DY|IM|IS|MB)(?:x+|…)")
CHEAP_MAKE = {"help", "policy-check"}


@dataclass(frozen=True)
class Command:
    where: str
    words: tuple[str, ...]
    whole: bool = True  # a command line to run, not a mention in prose (`redeliver trace`)

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.words)}"


def _words(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote in prose: not a command
        return []


def _commands_in_block(text: str, console: bool) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if console:
            if not (line.startswith("$ ") or pending):
                continue
            line = line.removeprefix("$ ")
        line = line.removeprefix("$ ")
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


def commands() -> list[Command]:
    found: list[Command] = []
    for doc in documents():
        where = str(doc.relative_to(ROOT))
        lines = [
            (line, True)
            for block in blocks(doc)
            if block.language in SHELL_BLOCKS
            for line in _commands_in_block(block.text, block.language == "console")
        ]
        lines += [
            (code, False) for code in inline_code(doc) if re.match(r"^(make|redeliver) \S", code)
        ]
        for line, whole in lines:
            for part in re.split(r"\s&&\s|\s;\s", line):
                words = _words(part)
                while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value before a command
                    words.pop(0)
                if words:
                    found.append(Command(where, tuple(words), whole))
    return found


def of(program: str) -> list[Command]:
    return [c for c in commands() if Path(c.words[0]).name == program]


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z0-9-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def _shaped(word: str) -> str:
    word = SID_PLACEHOLDER.sub(lambda m: m.group(1) + "0" * 32, word)
    if word == "+E164":
        return "+12125550100"
    if "|" in word and not word.startswith("-"):
        return word.split("|")[0]
    return word


def _subparsers(top: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [choices] = [a.choices for a in top._actions if a.dest == "command"]
    return dict(choices)


def _choices() -> dict[str, argparse.ArgumentParser]:
    return _subparsers(cli.parser())


def subcommands() -> set[str]:
    return set(_choices())


def test_the_docs_show_commands_to_check() -> None:
    assert {"help", "test", "setup", "offline", "deploy"} <= {c.words[1] for c in of("make")}
    assert len(of("redeliver")) >= 5


@pytest.mark.parametrize("command", of("make"), ids=str)
def test_each_make_command_names_a_target_of_the_makefile(command: Command) -> None:
    targets = [w for w in command.words[1:] if not w.startswith("-") and "=" not in w]
    assert targets, command
    assert set(targets) <= make_targets(), f"{command}: no such target in the Makefile"


def _runnable_make(command: Command) -> bool:
    target = command.words[1]
    files = [w.split("=", 1)[1] for w in command.words if w.startswith("FILE=")]
    return target in CHEAP_MAKE and all((ROOT / f).is_file() for f in files)


@pytest.mark.parametrize("command", [c for c in of("make") if _runnable_make(c)], ids=str)
def test_the_cheap_make_commands_run(command: Command) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    done = subprocess.run(
        ["make", "-s", *command.words[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"


def _parses(words: list[str]) -> bool:
    """Whether the command's parser takes the line (--help: exit code 0), each option spelt out
    (argparse would take `--stuck` for `--stuck-for`)."""
    parser = cli.parser()
    for each in (parser, *_subparsers(parser).values()):
        each.allow_abbrev = False
    try:
        parser.parse_args(words)
    except SystemExit as exit_:
        return exit_.code == 0
    return True


@pytest.mark.parametrize("command", of("redeliver"), ids=str)
def test_each_redeliver_command_line_parses(
    command: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    words = [_shaped(w) for w in command.words[1:] if w != "…"]
    if "COMMAND" in words:  # `redeliver COMMAND --help`: every command, below
        return
    if words and not words[0].startswith("-"):
        assert words[0] in subcommands(), f"{command}: no such redeliver command"
    if command.whole or not words or words[0].startswith("-"):
        assert _parses(words), f"{command}: a usage error"
    else:  # a mention: the command and the options it names exist
        options = {w.split("=")[0] for w in words[1:] if w.startswith("--")}
        known = set(_choices()[words[0]]._option_string_actions) if words else set()
        assert options <= known, f"{command}: no such option"
    capsys.readouterr()


def _runnable_redeliver(command: Command) -> bool:
    words = command.words[1:]
    return words[:2] == ("policy", "check") and len(words) > 2 and (ROOT / words[2]).is_file()


@pytest.mark.parametrize("command", [c for c in of("redeliver") if _runnable_redeliver(c)], ids=str)
def test_the_policy_checks_the_docs_show_run(
    command: Command, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert cli.main(list(command.words[1:])) == 0, capsys.readouterr()


def test_redeliver_and_each_of_its_commands_answer_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    documented = {c.words[1] for c in of("redeliver") if len(c.words) > 1} & subcommands()
    assert documented, "the docs show no redeliver command"
    for words in (["--help"], *([name, "--help"] for name in sorted(subcommands()))):
        with pytest.raises(SystemExit) as exit_:
            cli.main(words)
        assert exit_.value.code == 0, words
        assert capsys.readouterr().out.startswith("usage: redeliver")


def test_every_redeliver_command_is_documented() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    missing = {name for name in subcommands() if f"`{name}" not in operations}
    assert missing == set(), "docs/operations.md does not describe these commands"


def _tools_commands() -> list[tuple[str, str, list[str]]]:
    """(where, module, options) of each `python -m tools.X` the docs show."""
    found = []
    for doc in documents():
        text = doc.read_text()
        for match in re.finditer(r"python -m (tools\.[\w.]+)([^`\n]*(?:\n[^`\n]*)?)", text):
            options = re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", match.group(2))
            found.append((str(doc.relative_to(ROOT)), match.group(1), options))
    return found


@pytest.mark.parametrize(("where", "module", "options"), _tools_commands())
def test_each_python_m_tools_command_names_options_it_has(
    where: str, module: str, options: list[str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'common'}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"{where}: python -m {module} --help\n{done.stderr}"
    unknown = [o for o in options if o not in done.stdout]
    assert unknown == [], f"{where}: python -m {module} has no {unknown}"
