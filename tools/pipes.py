"""EventBridge Pipes' DynamoDB stream source, emulated: OutcomeEventsPipe offline.

moto has no Pipes (its CloudFormation skips the pipe; the table's stream, the DLQ and the role
are created). This reads the table's stream shards as the pipe would, from TRIM_HORIZON, applies
the pipe's own filter and input template (read from template.yaml, not copied), and puts each
event on the bus in moto's EventBridge, with the pipe's source and detail-type; it also keeps what
it published, for the tests and the offline report. As faithful as tools/sqs_poller.py is to the
SQS event source, no more: no batching window, no retries or DLQ (a PutEvents that fails raises).

Where moto's stream differs from DynamoDB's, and what this does about it:
- a PutItem that changes nothing writes a MODIFY record in moto (DynamoDB writes none): the
  INSERT filter drops it, as it would any MODIFY;
- a cancelled TransactWriteItems leaves no stream record in DynamoDB; in moto it can (moto
  applies a transaction's items one by one and then restores the table, and the offline stack's
  faster rollback, tools/moto_server.py, restores items only): each record's item is read back
  (consistently) before it is published, and one whose item is not in the table is counted
  (`phantoms`), never published. Such a leftover INSERT may name an event item that a later
  transaction inserts for real (the same decision, recorded then): in DynamoDB an insert-only
  item has one INSERT in its life, so an item published once is not published again
  (`repeats`, counted).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from tools.stack import TEMPLATE, load_template

PIPE = "OutcomeEventsPipe"
_PLACEHOLDER = re.compile(r"<(\$[^>]*)>")


@dataclass(frozen=True)
class PipeDefinition:
    """What the template says the pipe does."""

    pattern: dict[str, Any]
    source: str
    detail_type_path: str
    input_template: str


@dataclass(frozen=True)
class Published:
    source: str
    detail_type: str
    detail: dict[str, Any]


def definition(sam: dict[str, Any] | None = None) -> PipeDefinition:
    sam = sam or load_template(TEMPLATE)
    props = sam["Resources"][PIPE]["Properties"]
    [pattern] = props["SourceParameters"]["FilterCriteria"]["Filters"]
    target = props["TargetParameters"]
    bus = target["EventBridgeEventBusParameters"]
    return PipeDefinition(
        pattern=json.loads(pattern["Pattern"]),
        source=bus["Source"],
        detail_type_path=bus["DetailType"],
        input_template=target["InputTemplate"],
    )


def _path(record: dict[str, Any], path: str) -> Any:
    """A `$.a.b.c` JSON path of the record (dot notation, as Pipes supports it)."""
    value: Any = record
    for part in path.removeprefix("$.").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def matches(pattern: Any, value: Any) -> bool:
    """EventBridge's pattern match, for what the pipe's filter uses: nested keys and lists of
    exact values."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and matches(p, value[k]) for k, p in pattern.items()
        )
    if isinstance(pattern, list):
        return value in pattern
    return bool(pattern == value)


def transform(template: str, record: dict[str, Any]) -> dict[str, Any]:
    """The input template applied to a record: a quoted placeholder takes the string's
    characters (JSON-escaped), as Pipes does."""

    def value(match: re.Match[str]) -> str:
        found = _path(record, match.group(1))
        return json.dumps("" if found is None else str(found))[1:-1]

    result: dict[str, Any] = json.loads(_PLACEHOLDER.sub(value, template))
    return result


@dataclass
class OutcomeEventsPipe:
    """One stream, one bus. `pump()` moves what the stream holds now; call it as often as the
    pipe would poll."""

    dynamodb: Any
    streams: Any
    events: Any  # an EventBridge client, or None: collect only
    table: str
    bus: str = "default"
    spec: PipeDefinition = field(default_factory=definition)
    published: list[Published] = field(default_factory=list)
    phantoms: int = 0
    repeats: int = 0
    _seen: set[str] = field(default_factory=set)
    _iterators: dict[str, str] = field(default_factory=dict)

    def pump(self) -> list[Published]:
        stream_arn = self.dynamodb.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
        shards = self.streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        out: list[Published] = []
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            while True:
                answer = self.streams.get_records(ShardIterator=self._iterators[shard_id])
                self._iterators[shard_id] = answer["NextShardIterator"]
                records = answer.get("Records", [])
                for record in records:
                    if matches(self.spec.pattern, record) and self._in_table(record):
                        key = record["dynamodb"]["Keys"]["pk"]["S"]
                        if key in self._seen:
                            self.repeats += 1
                            continue
                        self._seen.add(key)
                        out.append(self._publish(record))
                if not records:
                    break
        self.published.extend(out)
        return out

    def _in_table(self, record: dict[str, Any]) -> bool:
        keys = record["dynamodb"]["Keys"]
        item = self.dynamodb.get_item(TableName=self.table, Key=keys, ConsistentRead=True)
        if "Item" not in item:
            self.phantoms += 1
            return False
        return True

    def _publish(self, record: dict[str, Any]) -> Published:
        detail_type = str(_path(record, self.spec.detail_type_path))
        detail = transform(self.spec.input_template, record)
        if self.events is not None:
            answer = self.events.put_events(
                Entries=[
                    {
                        "Source": self.spec.source,
                        "DetailType": detail_type,
                        "Detail": json.dumps(detail),
                        "EventBusName": self.bus,
                    }
                ]
            )
            if answer.get("FailedEntryCount"):
                raise RuntimeError(f"PutEvents failed: {answer['Entries']}")
        return Published(self.spec.source, detail_type, detail)
