"""What every command shares: the stack found by its CloudFormation name, its Twilio secret, a
message's partition of the table, and the one error type said to the operator as it is (exit
code 1).

Each command finds the stack's resources by its outputs and parameters, so it works the same
against a deployed stack and against the offline one (`--endpoint-url` set to moto's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from redeliver.adapters.twilio.credentials import TwilioCredentials
from redeliver.settings import RECEIPT_RETENTION_DAYS, ConfigurationError

# template.yaml's `ReceiptRetentionDays` default, the functions' own (tests/cli holds them equal):
# what a stack deployed without the parameter keeps, and what `policy check` checks against
DEFAULT_RETENTION_DAYS = RECEIPT_RETENTION_DAYS


class CommandError(Exception):
    """Said to the operator as it is, with exit code 1: the command could not do what it was
    asked (redeliver_cli.arguments: the rule). `output`: what it did do, printed first."""

    def __init__(self, message: str, output: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.output = list(output)


class UsageError(CommandError):
    """The command line itself is wrong, whatever the stack holds: said with the command's usage
    and exit code 2, as argparse answers (for what one argument's type cannot check alone)."""


@dataclass
class Stack:
    name: str
    outputs: dict[str, str]
    parameters: dict[str, str]

    @classmethod
    def find(cls, name: str) -> Stack:
        try:
            [stack] = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
        except ClientError as error:
            raise CommandError(
                f"stack {name!r} not found: {error.response['Error']['Message']}"
            ) from None
        return cls(
            name,
            {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
            {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])},
        )

    @property
    def retention_days(self) -> int:
        """`ReceiptRetentionDays`, the receipts' TTL the functions write with (RECEIPT_TTL_DAYS):
        a command writing receipts writes them alike."""
        value = self.parameters.get("ReceiptRetentionDays") or str(DEFAULT_RETENTION_DAYS)
        try:
            return int(value)
        except ValueError:
            raise CommandError(f"stack {self.name!r}: ReceiptRetentionDays is {value!r}") from None

    def twilio_credentials(self) -> TwilioCredentials:
        """The stack's Twilio secret (`TwilioSecretArn`), read as its functions read it. What is
        wrong with it (absent, unreadable, not JSON, a key lacking) is said; never the token."""
        arn = self.parameters.get("TwilioSecretArn", "")
        if not arn:
            raise CommandError(
                f"stack {self.name!r} has no TwilioSecretArn: is it a Redeliver stack?"
            )
        try:
            answer = boto3.client("secretsmanager").get_secret_value(SecretId=arn)
        except ClientError as error:
            said = error.response["Error"]
            if said.get("Code") == "ResourceNotFoundException":
                raise CommandError(f"the Twilio secret {arn} does not exist") from None
            raise CommandError(
                f"the Twilio secret {arn} could not be read: {said.get('Code')}: "
                f"{said.get('Message')}"
            ) from None
        text = answer.get("SecretString")
        if text is None:
            raise CommandError(f"the Twilio secret {arn} holds no text (a binary secret)")
        try:
            value = json.loads(text)
        except ValueError:
            raise CommandError(f"the Twilio secret {arn} is not JSON") from None
        try:
            return TwilioCredentials.from_secret(value)
        except ConfigurationError as error:
            raise CommandError(f"{error} ({arn})") from None

    def output(self, key: str) -> str:
        if key not in self.outputs:
            raise CommandError(f"stack {self.name!r} has no output {key}: is it a Redeliver stack?")
        return self.outputs[key]


def partition(table: str, message_sid: str) -> list[dict[str, Any]]:
    """Every item of a message's partition, each attribute's value unwrapped from its type."""
    client = boto3.client("dynamodb")
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"MSG#{message_sid}"}},
        ConsistentRead=True,
    ):
        items += [{k: next(iter(v.values())) for k, v in item.items()} for item in page["Items"]]
    return items


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
