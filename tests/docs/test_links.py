"""Every link in README.md and docs/*.md stays inside the repository and finds its target."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.markdown import ROOT, anchors, documents, links, prose, slug


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_is_relative_and_resolves_inside_the_repository(document: Path) -> None:
    broken = []
    for target in links(document):
        path, _, anchor = target.partition("#")
        if re.match(r"^[a-z][a-z0-9+.-]*:", path) or path.startswith("/"):
            broken.append(f"{target}: not a relative link")
            continue
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} there")
    assert broken == []


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_points_at_files_outside_the_repository_or_at_issues(document: Path) -> None:
    text = document.read_text()
    assert "../shared" not in text
    assert "DESIGN.md" not in text  # the team's own design notes; docs/design.md is the user's
    assert not re.search(r"\bissues?\s+#?\d+|(?<![\w&])#\d{1,4}\b", prose(document), re.I)


def test_the_link_checker_sees_what_github_sees() -> None:
    assert slug("1. Store the Twilio credentials") == "1-store-the-twilio-credentials"
    assert slug("The offline stack (`make offline`)") == "the-offline-stack-make-offline"
    assert slug("Runbook: `ReconciledFailures` (webhook delivery is broken)") == (
        "runbook-reconciledfailures-webhook-delivery-is-broken"
    )
