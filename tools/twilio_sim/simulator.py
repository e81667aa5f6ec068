"""The simulator (`TwilioSimulator`): an account's state (state) served over HTTP on loopback
(server), each request answered by its resource (routes) unless a fault answers in its place
(faults); `running` is one for the length of a `with` block."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from tools.samples import sid
from tools.twilio_sim.faults import Fault, FaultRates, Faults
from tools.twilio_sim.routes import creates_a_message, route
from tools.twilio_sim.server import LoopbackServer
from tools.twilio_sim.state import Account
from tools.twilio_sim.wire import Answer, error


class TwilioSimulator(Account):
    """An account (its state and the ways a test changes it: Account) that answers Twilio's
    REST calls over HTTP, with the faults it is told to inject."""

    def __init__(self, account_sid: str = sid("AC", "account"), seed: int = 0) -> None:
        super().__init__(account_sid, seed)
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request served
        self.faults = Faults(seed)
        self._server = LoopbackServer(self.handle)

    @property
    def fault_counts(self) -> Counter[str]:
        """Faults injected, by FaultRates field."""
        return self.faults.counts

    def fail_next(self, method: str, *faults: Fault) -> None:
        """The next len(faults) requests with this method answer with these faults, in order."""
        with self._lock:
            self.faults.script(method, *faults)

    def set_fault_rates(self, rates: FaultRates, seed: int, timeout_seconds: float) -> None:
        """Draw faults at random for message creates from now on (`refused` is drawn when a
        message is fetched: the create that follows finds the port closed). `timeout_seconds` is
        the client's read timeout: a withheld answer comes a second after it."""
        with self._lock:
            self.faults.set_rates(rates, seed, timeout_seconds)

    # -- server ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    def start(self, port: int = 0) -> TwilioSimulator:
        self._server.start(port)
        return self

    def stop(self) -> None:
        self._server.stop()

    def refuse_connections(self, seconds: float) -> None:
        """Close the listening socket now and open it again on the same port `seconds` later:
        a connect in between is refused by the kernel (ECONNREFUSED), as with a network blip."""
        self._server.refuse_connections(seconds)

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        form: dict[str, list[str]],
        headers: Mapping[str, str],
    ) -> Answer:
        """The answer to one request (its status, JSON body, delay, and any refusal after it)."""
        try:
            return self._answer(method, path, query, form, headers)
        finally:
            self.notify()

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        form: dict[str, list[str]],
        headers: Mapping[str, str],
    ) -> Answer:
        with self._lock:
            self.requests.append((method, path))
            refuse_for = self.faults.take_refusal()
            fault = self.faults.take(method)
            creating = creates_a_message(method, path)
            if fault and not creating and not fault.timeout_after_create:
                # on anything but a create, a fault is its error: there is nothing to store
                return Answer(
                    fault.status, error(fault.status, fault.code), fault.delay, refuse_for
                )
            answer = route(
                self, method, path, query, form, headers=headers, fault=fault, faults=self.faults
            )
            answer.refuse_for = refuse_for or answer.refuse_for
            if fault and not creating:
                answer.delay = fault.delay
            return answer


@contextmanager
def running(seed: int = 0) -> Iterator[TwilioSimulator]:
    simulator = TwilioSimulator(seed=seed).start()
    try:
        yield simulator
    finally:
        simulator.stop()
