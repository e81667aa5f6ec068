"""events/*.json: current with their generator, and accepted by the real handler."""

from __future__ import annotations

import json
from types import ModuleType

import pytest

from tests.integration.resources import Resources
from tests.lambdas import invoke
from tools import make_events


def test_events_are_what_the_generator_writes() -> None:
    assert make_events.main(["--check"]) == 0


@pytest.mark.parametrize("name", sorted(make_events.SAMPLES))
def test_each_sample_event_is_accepted_and_stored(
    ingest: ModuleType,
    resources: Resources,
    name: str,
) -> None:
    event = json.loads((make_events.EVENTS / f"{name}.json").read_text())
    assert invoke(ingest, event)["statusCode"] == 200
    fields = make_events.SAMPLES[name]
    [item] = [i for i in resources.items() if i["pk"]["S"] == "MSG#" + fields["MessageSid"]]
    assert item["status"]["S"] == fields["Status"]
    assert len(resources.queued()) == (1 if fields["Status"] in ("undelivered", "failed") else 0)
