"""The simulator's fault injection and services: the one place that talks to the simulator's
FaultRates / set_fault_rates / fault_counts / add_service / add_conversation(service=...). A
simulator without them runs the rest of the chaos and the report says, as a broken check, what it
could not inject."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from tools.chaos.config import TWILIO_TIMEOUT_SECONDS, ChaosConfig
from tools.twilio_sim.faults import FaultRates
from tools.twilio_sim.simulator import TwilioSimulator


def configure_simulator(sim: TwilioSimulator, config: ChaosConfig) -> tuple[list[str], str | None]:
    """Switch on Twilio's faults and a second Conversation Service. Returns what could not be
    switched on, and the second service's SID (None: one service)."""
    missing = []
    if config.faults.any:
        set_fault_rates = getattr(sim, "set_fault_rates", None)
        if set_fault_rates is None:
            missing.append("Twilio faults: the simulator has no FaultRates/set_fault_rates")
        else:
            set_fault_rates(
                FaultRates(**dataclasses.asdict(config.faults)),
                seed=config.seed,
                timeout_seconds=TWILIO_TIMEOUT_SECONDS,  # the answer comes a second later
            )
    second = None
    if config.second_service > 0:
        add_service = getattr(sim, "add_service", None)
        if add_service is None:
            missing.append("a second Conversation Service: the simulator has no add_service")
        else:
            second = str(add_service("chaos-second"))
            default = sim.service_webhooks.get(sim.chat_service_sid)
            if default is not None:  # its webhooks configured as the default service's
                sim.service_webhooks[second] = {**default, "chat_service_sid": second}
    return missing, second


def add_conversation(
    sim: TwilioSimulator, name: str, channel: str, service: str | None, address: str
) -> str:
    if service is None:
        return sim.add_conversation(name=name, channel=channel, address=address)
    add: Any = sim.add_conversation  # service= is the newer simulator's keyword
    return str(add(name=name, channel=channel, service=service, address=address))


def fault_counts(sim: TwilioSimulator) -> Counter[str]:
    return Counter(getattr(sim, "fault_counts", None) or {})
