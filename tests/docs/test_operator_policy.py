"""docs/operator-policy.json allows every AWS call the `redeliver` command makes, and no other.

Two witnesses, and either fails the test: the calls recorded while the tests that drive the CLI
ran (tests/docs/aws_calls.py: the command's own calls and those of the layer's adapters it
drives), and the calls written in redeliver_cli/ on a client made there (`boto3.client("sqs")
.send_message(...)`, paginators too), read with `ast`, so a call no test reaches is still seen.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys

import botocore.session
import pytest

from tests.docs import aws_calls

ROOT = aws_calls.ROOT
POLICY = ROOT / "docs" / "operator-policy.json"
# In the policy without being called by name: what a call needs besides its own action.
IMPLIED = {
    # GetSecretValue on a secret encrypted with a customer-managed key (TwilioSecretKmsKeyArn)
    "kms:Decrypt": "secretsmanager:GetSecretValue",
}
IMPORTS_THE_CLI = re.compile(r"^\s*(from|import) redeliver_cli\b", re.MULTILINE)


def policy_actions() -> set[str]:
    document = json.loads(POLICY.read_text())
    assert document["Version"] == "2012-10-17"
    actions: set[str] = set()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        listed = statement["Action"]
        actions |= {listed} if isinstance(listed, str) else set(listed)
    return actions


def clients_and_calls(tree: ast.AST) -> set[tuple[str, str]]:
    """(service, method) of each call on a `boto3.client("service")`, whether the client is
    called at once or first bound to a name; `get_paginator("op")` counts as the call `op`."""

    def service_of(node: ast.expr) -> str | None:
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "client"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "boto3"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            return str(node.args[0].value)
        return None

    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and (service := service_of(node.value)):
            bound |= {t.id: service for t in node.targets if isinstance(t, ast.Name)}
    calls: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        named = bound.get(owner.id) if isinstance(owner, ast.Name) else None
        service = service_of(owner) or named
        if service is None:
            continue
        if node.func.attr == "get_paginator":
            assert isinstance(node.args[0], ast.Constant), ast.dump(node)
            calls.add((service, str(node.args[0].value)))
        else:
            calls.add((service, node.func.attr))
    return calls


def written_calls() -> set[str]:
    session = botocore.session.get_session()
    actions: set[str] = set()
    for path in sorted((ROOT / "redeliver_cli").rglob("*.py")):
        for service, method in clients_and_calls(ast.parse(path.read_text())):
            client = session.create_client(
                service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
            )
            operation = client.meta.method_to_api_mapping.get(method)
            assert operation, f"{path.name}: {service}.{method} is not an API call"
            actions.add(aws_calls.iam_action(client.meta.service_model.endpoint_prefix, operation))
    return actions


def cli_test_files() -> list[str]:
    return sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("test_*.py")
        if "docs" not in path.parts and IMPORTS_THE_CLI.search(path.read_text())
    )


@pytest.fixture(scope="module")
def recorded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """This session's record when it ran every test that drives the CLI (this test runs last);
    else those tests, run again in a process of their own, recording."""
    ran = {str(item.path.relative_to(ROOT)) for item in request.session.items}
    files = cli_test_files()
    if set(files) <= ran and aws_calls.RECORDED:
        return set(aws_calls.RECORDED)
    output = tmp_path_factory.mktemp("calls") / "calls.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *files],
        cwd=ROOT,
        env={**os.environ, aws_calls.OUTPUT_ENV: str(output)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return set(json.loads(output.read_text()))


def test_the_ast_reader_sees_each_form_of_call() -> None:
    tree = ast.parse(
        "import boto3\n"
        "sqs = boto3.client('sqs')\n"
        "sqs.send_message(QueueUrl=u)\n"
        "boto3.client('cloudformation').describe_stacks(StackName=n)\n"
        "for page in boto3.client('dynamodb').get_paginator('scan').paginate():\n    pass\n"
    )
    assert clients_and_calls(tree) == {
        ("sqs", "send_message"),
        ("cloudformation", "describe_stacks"),
        ("dynamodb", "scan"),
    }


def test_every_aws_call_the_cli_makes_is_allowed(recorded: set[str]) -> None:
    # The recorder works: every command starts by finding its stack.
    assert "cloudformation:DescribeStacks" in recorded
    allowed = policy_actions()
    called = recorded | written_calls()
    assert called - allowed == set(), f"add these to {POLICY.relative_to(ROOT)}"
    unused = {a for a in allowed - called if IMPLIED.get(a) not in called}
    assert unused == set(), f"no command calls these: remove them from {POLICY.name}"
