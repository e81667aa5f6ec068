"""What the documentation says, read from README.md and docs/*.md: code blocks, links, headings,
inline code. The tests in this folder hold what they read against the repository."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def documents() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # where the block's first line is, 1-based
    language: str
    text: str


FENCE = re.compile(r"^```(\S*)\s*$")


def blocks(path: Path) -> list[Block]:
    found: list[Block] = []
    language: str | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fence = FENCE.match(line.strip()) if line.lstrip().startswith("```") else None
        if language is None and fence:
            language, start, body = fence.group(1), number + 1, []
        elif language is not None and line.strip() == "```":
            found.append(Block(path, start, language, "\n".join(body)))
            language = None
        elif language is not None:
            body.append(line)
    return found


def prose(path: Path) -> str:
    """The text outside code blocks."""
    text: list[str] = []
    inside = False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            continue
        if not inside:
            text.append(line)
    return "\n".join(text)


LINK = re.compile(r"(?<!!)\[(?:[^\]]*)\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")


def links(path: Path) -> list[str]:
    return LINK.findall(prose(path))


def inline_code(path: Path) -> list[str]:
    return INLINE_CODE.findall(prose(path))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {
        slug(line.lstrip("#")) for line in prose(path).splitlines() if re.match(r"^#{1,6} ", line)
    }
