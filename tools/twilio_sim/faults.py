"""Faults: answers in place of the normal ones, as Twilio fails.

`fail_next(method, *faults)` scripts the next requests of a method; `set_fault_rates` draws them
at random for message creates (the chaos run). What each one leaves behind is what Twilio would: a
429 or a 5xx *before* the store stores nothing, a 5xx *after* the store or a read timeout (the
answer withheld past the client's timeout) stores the message, and a refused connection is a real
refused TCP connect (the listening socket is closed for a moment and opened again on the same
port), so the client's request never leaves.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """One scripted answer in place of the normal one (see the module docstring).

    The named constructors say which of Twilio's failures it is."""

    status: int = 500
    code: int = 20500
    stored: bool = False  # the create is stored before this answer (a 5xx after the store)
    timeout_after_create: bool = False  # stored, and the normal answer sent `delay` s late
    delay: float = 0.0  # seconds before answering
    refused: bool = False  # no answer: connections are refused for `delay` seconds

    @classmethod
    def throttled(cls) -> Fault:
        return cls(status=429, code=20429)

    @classmethod
    def error_before(cls, status: int = 503) -> Fault:
        return cls(status=status, code=_ERROR_CODES.get(status, 20500))

    @classmethod
    def error_after(cls, status: int = 502) -> Fault:
        return cls(status=status, code=_ERROR_CODES.get(status, 20500), stored=True)

    @classmethod
    def timeout_after(cls, delay: float) -> Fault:
        return cls(timeout_after_create=True, delay=delay)

    @classmethod
    def connection_refused(cls, seconds: float = 0.5) -> Fault:
        """The port closes once the request before it is answered: the scripted method's next
        request (in the worker: the create after its fetch) finds nothing listening."""
        return cls(refused=True, delay=seconds)


_ERROR_CODES = {500: 20500, 502: 20500, 503: 20503, 504: 20504}


@dataclass(frozen=True)
class FaultRates:
    """Shares of message creates that meet each fault (the chaos run)."""

    throttled: float = 0.0  # 429 / 20429, nothing stored
    error_before: float = 0.0  # 503 before the store: nothing stored
    error_after: float = 0.0  # 502 after the store: stored, client sees a 5xx
    timeout_after: float = 0.0  # stored, answer withheld past the client's timeout
    refused: float = 0.0  # connection refused: nothing stored


class Faults:
    """The faults still to come: the scripted ones (`scripted`, taken in order per method) and the
    rates they are drawn at for message creates, with the count of each kind drawn (`counts`).
    The simulator calls it under its lock."""

    def __init__(self, seed: int) -> None:
        self.scripted: list[tuple[str, Fault]] = []
        self.rates = FaultRates()
        self.counts: Counter[str] = Counter()  # faults injected, by FaultRates field
        self._rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
        self._timeout = 10.0

    def script(self, method: str, *faults: Fault) -> None:
        self.scripted.extend((method, fault) for fault in faults)

    def set_rates(self, rates: FaultRates, seed: int, timeout_seconds: float) -> None:
        self.rates = rates
        self._rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
        self._timeout = timeout_seconds

    def take(self, method: str) -> Fault | None:
        """The next scripted fault of `method` that answers (a refusal is taken apart)."""
        fault = next((f for m, f in self.scripted if m == method and not f.refused), None)
        if fault is not None:
            self.scripted.remove((method, fault))
        return fault

    def take_refusal(self) -> float:
        """A scripted refusal heading any method's queue starts once this request is answered
        (with the worker's fetch-then-create, the create is the one refused)."""
        for method in {m for m, _ in self.scripted}:
            head = next(f for m, f in self.scripted if m == method)
            if head.refused:
                self.scripted.remove((method, head))
                return head.delay
        return 0.0

    def draw_refusal(self) -> float:
        """Seconds to refuse connections after a message fetch (0: none), at the `refused` rate."""
        if self.rates.refused and self._rng.random() < self.rates.refused:
            self.counts["refused"] += 1
            return max(0.5, self._timeout / 4)
        return 0.0

    def draw_create(self) -> Fault | None:
        rates = self.rates
        roll = self._rng.random()
        for name, share, fault in (
            ("throttled", rates.throttled, Fault.throttled()),
            ("error_before", rates.error_before, Fault.error_before(503)),
            ("error_after", rates.error_after, Fault.error_after(502)),
            ("timeout_after", rates.timeout_after, Fault.timeout_after(self._timeout + 1.0)),
        ):
            if roll < share:
                self.counts[name] += 1
                return fault
            roll -= share
        return None
