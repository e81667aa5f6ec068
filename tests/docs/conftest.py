"""The docs tests: the operator policy's test runs last, after every test that drives the CLI."""

from __future__ import annotations

import pytest

LAST = "test_every_aws_call_the_cli_makes_is_allowed"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.name.startswith(LAST))
