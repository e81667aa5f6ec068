"""Where a run departs from the deployed template (`Tuning`: time compressed, each departure said
in the report's notes), and which containers it kills (`KillPlan`: make chaos plans kills)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tuning:
    """Departures from the deployed template for one run: time compressed, like OFFLINE_POLICY's
    delays, so that a run ends in minutes. Each is said in the report (`notes`)."""

    environment: dict[str, dict[str, str]] = field(default_factory=dict)  # function → overrides
    visibility_timeout: int | None = None  # RetryQueue's VisibilityTimeout, seconds
    sweep_every: float | None = None  # seconds between SweepFunction runs; None: the template's
    kills: KillPlan | None = None  # containers to kill mid-invocation (make chaos)
    # function → its Timeout, in seconds, enforced as Lambda does (the invocation is stopped).
    # Elsewhere the context runs down from the deployed Timeout but nothing stops a late one.
    timeouts: dict[str, float] = field(default_factory=dict)
    # Seconds a receipt may stay at `sent` before ReconcileFunction asks Twilio (None: deployed
    # with ReconcileAfterMinutes=0, no reconciliation). Deployed as 1 minute, the least above 0,
    # with the function's clock this much less than a minute ahead; and how often it runs.
    reconcile_after: float | None = 3.0
    reconcile_every: float = 2.0
    # TrackMessages=true (only with reconciliation): ingest records each message's onMessageAdded,
    # which the simulator sends as the service's filters say (`webhook_filters`)
    track_messages: bool = True

    @property
    def tracking(self) -> bool:
        return self.track_messages and self.reconcile_after is not None

    @property
    def clocks(self) -> dict[str, float]:
        """function → seconds its clock runs ahead of the machine's."""
        if self.reconcile_after is None:
            return {}
        return {"ReconcileFunction": 60.0 - self.reconcile_after}

    def notes(self, template: dict[str, Any]) -> list[str]:
        lines = [
            f"{function} Timeout={seconds:g} s, enforced (template: "
            f"{_literal(template['Resources'][function]['Properties'].get('Timeout'), template)})"
            for function, seconds in sorted(self.timeouts.items())
        ]
        for function, values in sorted(self.environment.items()):
            declared = template["Resources"][function]["Properties"]["Environment"]["Variables"]
            lines += [
                f"{function} {name}={value} (template: {_literal(declared.get(name), template)})"
                for name, value in sorted(values.items())
            ]
        if self.visibility_timeout is not None:
            declared = template["Resources"]["RetryQueue"]["Properties"]["VisibilityTimeout"]
            lines.append(
                f"RetryQueue VisibilityTimeout={self.visibility_timeout} (template: {declared})"
            )
        if self.sweep_every is not None:
            lines.append(
                f"SweepFunction every {self.sweep_every:g} s (template: {sweep_schedule(template)})"
            )
        defaults = {name: p.get("Default") for name, p in template["Parameters"].items()}
        if self.reconcile_after is None:
            lines.append(
                "ReconcileAfterMinutes=0: no reconciliation (template default "
                f"{defaults['ReconcileAfterMinutes']})"
            )
        else:
            lines.append(
                f"ReconcileFunction every {self.reconcile_every:g} s (template: every "
                f"ReconcileEveryMinutes={defaults['ReconcileEveryMinutes']} minutes); "
                f"ReconcileAfterMinutes=1 (template default {defaults['ReconcileAfterMinutes']}) "
                f"with its clock {60 - self.reconcile_after:g} s ahead: a receipt at sent is "
                f"looked up after {self.reconcile_after:g} s (one Twilio still reports sent, a "
                "minute after that)"
            )
        if self.tracking:
            lines.append(
                f"TrackMessages=true (template default {defaults['TrackMessages']}): "
                "onMessageAdded in the service's filters (--no-track-messages: off)"
            )
        return lines


def _literal(value: Any, template: dict[str, Any]) -> str:
    """A template value as written, with `!FindInMap` looked up; None: unset."""
    if isinstance(value, dict) and "Fn::FindInMap" in value:
        mapping, key, name = value["Fn::FindInMap"]
        return str(template["Mappings"][mapping][key][name])
    return "unset" if value is None else str(value)


class KillPlan:
    """Which invocations to kill, and where: `arm(function)` is asked before each invocation and
    answers a kill point (or None): n, "before its n-th AWS call", or "sqs.SendMessage", "before
    its first call of that operation"; `killed` is told when a kill happened. This one kills
    nothing (make chaos plans kills: tools.chaos.kills.ChaosKills)."""

    def arm(self, function: str) -> KillPoint | None:
        return None

    def killed(self, function: str) -> None:
        return None


KillPoint = int | str


@dataclass(frozen=True)
class Kill:
    function: str
    where: str  # "before DynamoDB.UpdateItem (AWS call 1)"
    event: str  # what it was handling
    at: float  # seconds into the run


def sweep_schedule(template: dict[str, Any]) -> str:
    events = template["Resources"]["SweepFunction"]["Properties"].get("Events") or {}
    for event in events.values():
        if event["Type"] == "Schedule":
            return str(event["Properties"]["Schedule"])
    return "none"


def schedule_seconds(expression: str) -> float | None:
    """`rate(5 minutes)` → 300.0; anything else (cron) → None."""
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    if not match:
        return None
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return float(int(match.group(1)) * unit)
