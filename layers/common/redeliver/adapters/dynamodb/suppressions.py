"""DynamoDB adapter: suppressed recipients (policy v2, action `suppress`), in the receipts table.

A failure the policy maps to `suppress` (an unsubscribed, unknown or landline number) suppresses
its recipient for `suppress_days`: a later failure to the same address gives up as
`recipient_suppressed` before any create. One aggregate, one module, over the same table:

| pk                      | sk         | what                                        | written by |
|-------------------------|------------|---------------------------------------------|------------|
| `SUPPRESS#<sha256 hex>` | `SUPPRESS` | `error_code`, `since`, `expires_at` (TTL)   | retry      |

The key is a SHA-256 of the recipient's E.164 number (`whatsapp:+1555...` and `+1555...` are
one recipient), never the number: it keeps phone numbers out of keys, exports, logs and metrics
(DESIGN invariant 7). A hash of a number is not a secret (there are few numbers: anyone who can
read the table can test a guess), so the table's own access control still guards it; what the
hash buys is that nothing stored or logged *shows* a number. An operator finds an entry by the
number (`redeliver suppressions check +E164`), which is hashed the same way.

DynamoDB deletes expired items lazily (within days), so `active` also compares `expires_at`
with the clock: a suppression ends on time, not when the sweep gets to it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redeliver.domain.quiet_hours import e164

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

PREFIX = "SUPPRESS#"
SORT_KEY = "SUPPRESS"
_DOMAIN = "redeliver/suppress/v1:"  # so these hashes match no other table's


def address_hash(address: str) -> str:
    """The key of a recipient: its E.164 number hashed (any channel prefix dropped)."""
    number = e164(address) or address.strip()
    return hashlib.sha256((_DOMAIN + number).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Suppression:
    error_code: int
    since: int
    expires_at: int


class Suppressions:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._db = client
        self._table = table_name

    def suppression(
        self, address: str, days: int, error_code: int | None, now: int
    ) -> TransactWriteItemTypeDef:
        """The write that suppresses `address` for `days` from `now` (again: a later failure
        starts it anew), for a transaction: the retry worker writes it in the one that records
        its give-up, so only the decision that recorded the give-up suppresses (a duplicate job
        finds the attempt decided, and does not undo an operator's `suppressions remove`)."""
        return {
            "Put": {
                "TableName": self._table,
                "Item": {
                    **_key(address),
                    "error_code": {"N": str(error_code or 0)},
                    "since": {"N": str(now)},
                    "expires_at": {"N": str(now + days * 86_400)},
                },
            }
        }

    def get(self, address: str, now: int) -> Suppression | None:
        """The suppression in force for `address` at `now`, if any."""
        answer = self._db.get_item(TableName=self._table, Key=_key(address), ConsistentRead=True)
        item = answer.get("Item")
        if not item:
            return None
        found = Suppression(
            int(item["error_code"].get("N", "0")),
            int(item["since"].get("N", "0")),
            int(item["expires_at"].get("N", "0")),
        )
        return found if found.expires_at > now else None

    def remove(self, address: str) -> bool:
        """Lift a suppression (an operator's decision); False when there was none."""
        answer = self._db.delete_item(
            TableName=self._table, Key=_key(address), ReturnValues="ALL_OLD"
        )
        return bool(answer.get("Attributes"))


def _key(address: str) -> dict[str, AttributeValueTypeDef]:
    return {"pk": {"S": PREFIX + address_hash(address)}, "sk": {"S": SORT_KEY}}
