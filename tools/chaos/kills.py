"""Which invocations a chaos run kills, and where (`ChaosKills`): the runtime asks before each
invocation (tools.offline.tuning.KillPlan)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import ClassVar

from tools.offline.tuning import KillPlan, KillPoint


class ChaosKills(KillPlan):
    """`count` kills per function, at invocations drawn (seeded) from its first `horizon`; each
    kill right before AWS call `point` of that invocation. An invocation that ends before reaching
    its point passes the kill on to the next one.

    Ingest makes one DynamoDB write per receipt, then, for a failure, one SQS send:
    "dynamodb.UpdateItem" kills it before the write (the webhook is lost: nothing stored; named,
    not "AWS call 1", which in a new container is the secret's read, and would kill a forged
    webhook as well as a signed one), "sqs.SendMessage" after the write
    and before the enqueue (stored with its outbox mark: the sweeper must queue the job). The
    retry worker's points (its n-th AWS call) fall before or after its claim, its Twilio call and
    its record.
    """

    POINTS: ClassVar[dict[str, tuple[KillPoint, ...]]] = {
        "IngestFunction": ("dynamodb.UpdateItem", "sqs.SendMessage"),
        "RetryFunction": (1, 2, 3, 4, 5, 6),
    }

    def __init__(
        self,
        seed: int,
        plan: dict[str, tuple[int, int]],
        points: dict[str, tuple[KillPoint, ...]] | None = None,
    ) -> None:
        """`plan`: function → (kills, horizon). `points`: function → the kill points to use in
        turn (default: POINTS, in a seeded order)."""
        rng = random.Random(seed)  # noqa: S311 - a reproducible run
        self.asked = {function: count for function, (count, _) in plan.items()}
        self._due: dict[str, list[tuple[int, KillPoint]]] = {}
        for function, (count, horizon) in plan.items():
            first = min(5, horizon)
            picks = sorted(rng.sample(range(first, horizon + 1), min(count, horizon - first + 1)))
            chosen = (points or {}).get(function)
            if not chosen:  # each point in turn, from a seeded start: every kind gets its kill
                chosen = tuple(rng.sample(self.POINTS[function], len(self.POINTS[function])))
            self._due[function] = [(n, chosen[k % len(chosen)]) for k, n in enumerate(picks)]
        self._armed: dict[str, KillPoint] = {}
        self._seen: Counter[str] = Counter()
        self.fired: Counter[str] = Counter()
        self._lock = threading.Lock()

    def arm(self, function: str) -> KillPoint | None:
        with self._lock:
            self._seen[function] += 1
            due = self._due.get(function)
            if function not in self._armed and due and due[0][0] <= self._seen[function]:
                self._armed[function] = due.pop(0)[1]
            return self._armed.get(function)

    def killed(self, function: str) -> None:
        with self._lock:
            self._armed.pop(function, None)
            self.fired[function] += 1
