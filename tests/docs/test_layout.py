"""The README's *Layout* is the tree: every path it names exists, and it names every module of
the `redeliver` package and of tools/. Paths named in backquotes anywhere in the docs exist too."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.docs.markdown import README, ROOT, blocks, documents, inline_code

# The modules the Layout must name, each by its file name.
COVERED = ("layers/common/redeliver", "tools")
# An entry starts at most this far in; deeper lines continue the entry above.
ENTRY_INDENT = 4
NAME = re.compile(r"[\w.*/-]+?\.(?:py|md|toml|yaml|json|txt|in)\b|\b[\w-]+/(?=[\s,;:)]|$)")


@dataclass
class Entry:
    path: Path  # a directory, or the file the entry names
    text: list[str] = field(default_factory=list)


def layout_block() -> str:
    text = README.read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    [block] = [b for b in blocks(README) if b.text in section]
    return block.text


def entries(block: str) -> list[Entry]:
    found: list[Entry] = []
    parents: dict[int, Path] = {-1: ROOT}
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        if indent > ENTRY_INDENT:
            found[-1].text.append(line)
            continue
        name, _, rest = line.strip().partition(" ")
        parent = parents[max(i for i in parents if i < indent)]
        path = parent / name
        parents = {i: p for i, p in parents.items() if i < indent}
        if name.endswith("/"):
            parents[indent] = path
        found.append(Entry(path, [rest]))
    return found


def named_paths(entry: Entry) -> tuple[set[Path], list[str]]:
    """The files and folders an entry names, and the names that resolve nowhere."""
    paths: set[Path] = set()
    missing: list[str] = []
    home = entry.path if entry.path.name.endswith("/") or entry.path.is_dir() else entry.path.parent
    if "*" in str(entry.path):
        matches = list(ROOT.glob(str(entry.path.relative_to(ROOT))))
        paths |= set(matches)
        if not matches:
            missing.append(str(entry.path.relative_to(ROOT)))
    elif entry.path.exists():
        paths.add(entry.path)
    else:
        missing.append(str(entry.path.relative_to(ROOT)))
    base = home
    for name in NAME.findall(" ".join(entry.text)):
        where = next((d / name for d in (base, home, ROOT) if (d / name).exists()), None)
        if where is None:
            missing.append(f"{name} (in the entry of {entry.path.relative_to(ROOT)})")
            continue
        paths.add(where)
        if name.endswith("/"):
            base = where
    return paths, missing


def test_every_path_the_layout_names_exists() -> None:
    missing = [name for entry in entries(layout_block()) for name in named_paths(entry)[1]]
    assert missing == [], "README.md's Layout names what is not in the tree"


def test_the_layout_names_every_module_of_the_package_and_the_tools() -> None:
    named = {path for entry in entries(layout_block()) for path in named_paths(entry)[0]}
    modules = {
        path
        for top in COVERED
        for path in (ROOT / top).rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    }
    unnamed = sorted(str(p.relative_to(ROOT)) for p in modules - named)
    assert unnamed == [], "README.md's Layout does not name these modules"


def test_every_repository_path_the_docs_name_in_backquotes_exists() -> None:
    tops = "|".join(
        re.escape(p.name) for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    pattern = re.compile(rf"^(?:{tops})/[\w./*-]*$")
    missing = [
        f"{doc.relative_to(ROOT)}: {code}"
        for doc in documents()
        for code in inline_code(doc)
        if pattern.match(code) and not list(ROOT.glob(code.rstrip("/")))
    ]
    assert missing == []


def test_the_layout_reader_resolves_nested_entries() -> None:
    block = (
        "tools/              development only\n"
        "  offline/                runtime.py (the containers)\n"
        "                          checks.py\n"
        "layers/common/      the package\n"
        "    redeliver/usecases/     retry/ (worker.py; sending/ same.py)\n"
    )
    found = entries(block)
    assert [e.path.relative_to(ROOT) for e in found] == [
        Path("tools"),
        Path("tools/offline"),
        Path("layers/common"),
        Path("layers/common/redeliver/usecases"),
    ]
    paths, missing = named_paths(found[1])
    assert missing == []
    assert ROOT / "tools/offline/checks.py" in paths
    paths, missing = named_paths(found[3])
    assert missing == []
    assert ROOT / "layers/common/redeliver/usecases/retry/sending/same.py" in paths
