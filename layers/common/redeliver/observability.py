"""Logger and metrics: one of each per process, configured from the environment.

Metrics go to one namespace (POWERTOOLS_METRICS_NAMESPACE) with the `service` dimension
(POWERTOOLS_SERVICE_NAME, the stack name). A few series add one more dimension from a small,
fixed set of values (`count_by`), so that alarms and the dashboard can name every series exactly:
tests/integration/test_alarms.py compares them with what the handlers print.

Why our own EMF emitter and not Powertools `Metrics`: log bytes are most of what a receipt costs
beyond the floor. Powertools puts every metric of its set under one directive, so a series with one
more dimension needed its own document (`single_metric`): an ordinary receipt printed two EMF
documents, a new failure three. `Metrics.add_dimensions()` would not help: it applies *every* metric
to *every* dimension set (spurious series, each a billed custom metric). The EMF specification
allows several directives in `_aws.CloudWatchMetrics`, each with its own dimension sets and metrics,
so `Emf` packs one invocation's series into one document, and opens a second only when one cannot
hold them: a dimension key needing two values (a retry batch giving up for two reasons), a metric
name counted under two dimension sets, EMF's 100 metrics, or its 100 values of one metric (a
reconcile run recording over 100 receipts alike; Powertools flushed there too).

A directive may also list several dimension sets for its metrics, and CloudWatch aggregates the one
value into each: `count_each` uses that where one count has several breakdowns. An ordinary
receipt is one metric, `Receipts`, under `service` alone (webhooks that reached us), by `change`
(`new` is the failure rate's denominator; `duplicate`, `older`, `latest`) and by `status` (a
receipt that changed what we know), and a new failure is `NewFailures` alone and by
`error_class`. Five more names used to carry these series (NewReceipts, DuplicateReceipts,
OutOfOrderReceipts, ReceiptsByStatus, NewFailuresByClass); now they are read by their
dimensions, with the `change` and `status` values shared by the receipt line.

It also omits `Unit`: every metric here is a count, and alarms and the dashboard read them
without a unit; `"Unit":"Count"` was 15 bytes a metric, on every invocation.

The receipt log line rides on that document (`Emf.ride`): EMF allows other properties beside the
metrics, so an ordinary receipt costs one compact line, not a Powertools log line repeating the
Lambda context plus documents. It holds only what an operator needs (see redeliver.usecases.ingest).
Warnings and errors still go through the Powertools `Logger`, with the Lambda context.

Log levels: Lambda's advanced logging controls (template `LoggingConfig`) set
AWS_LAMBDA_LOG_LEVEL, which the Powertools Logger obeys over POWERTOOLS_LOG_LEVEL: one source of
truth. Lambda also filters stdout JSON by its `level` key, and a line without one (an EMF
document) counts as INFO: an application level above INFO would drop every metric, so the template
allows only TRACE, DEBUG and INFO. A rider is printed only while the logger is enabled for INFO.

No Powertools Tracer: importing the X-Ray SDK costs about 0.3 s of every cold start (`make bench`),
a lot inside Twilio's 5 s webhook timeout. `Tracing: Active` in the template still records each
invocation in X-Ray.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from aws_lambda_powertools import Logger

logger = Logger()

KNOWN_STATUSES = ("sent", "delivered", "read", "undelivered", "failed")
ERROR_CLASSES = {21: "21xxx", 30: "30xxx", 63: "63xxx"}  # API/opt-out, carrier, WhatsApp
MAX_METRICS = 100  # EMF: metrics in one document
MAX_VALUES = 100  # EMF: values of one metric in one document (a longer array: the whole refused)
_COMPACT = (",", ":")

P = ParamSpec("P")
R = TypeVar("R")
Dimensions = tuple[tuple[str, str], ...]  # the extra dimensions of a series, beside `service`
DimensionSets = tuple[tuple[str, ...], ...]  # a series' dimension sets, each starting `service`


class _Document:
    """One EMF document under construction: its root properties and its directives."""

    def __init__(self) -> None:
        self.root: dict[str, Any] = {}
        self.directives: dict[DimensionSets, list[str]] = {}  # dimension sets -> metrics
        self.names: set[str] = set()  # metric names: root keys CloudWatch reads as values

    def takes(self, dimensions: Mapping[str, str], name: str) -> bool:
        """Room for one more metric, its name not yet a root key, each dimension free or equal."""
        if len(self.names) >= MAX_METRICS or name in self.root:
            return False
        return self.takes_fields(dimensions)

    def takes_fields(self, fields: Mapping[str, object]) -> bool:
        return all(k not in self.names and self.root.get(k, v) == v for k, v in fields.items())

    def add(
        self, dimensions: Mapping[str, str], sets: DimensionSets, name: str, values: list[float]
    ) -> None:
        self.root.update(dimensions)
        self.root[name] = values[0] if len(values) == 1 else values
        self.directives.setdefault(sets, []).append(name)
        self.names.add(name)

    def render(self, namespace: str, timestamp: int) -> dict[str, Any]:
        directives = [
            {
                "Namespace": namespace,
                "Dimensions": [list(keys) for keys in sets],
                "Metrics": [{"Name": name} for name in names],
            }
            for sets, names in self.directives.items()
        ]
        return {"_aws": {"Timestamp": timestamp, "CloudWatchMetrics": directives}, **self.root}


class Emf:
    """One invocation's counts and its receipt line, printed as EMF when the handler ends."""

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        self._series: dict[tuple[Dimensions, DimensionSets], dict[str, list[float]]] = {}
        self._rider: dict[str, object] | None = None
        self._write = write

    def count(
        self,
        name: str,
        value: float = 1,
        dimensions: Dimensions = (),
        sets: tuple[tuple[str, ...], ...] | None = None,
    ) -> None:
        """Count `name` under `service` plus `dimensions`; or, given `sets` (names among
        `dimensions`, `()` for `service` alone), under each of those dimension sets: one value,
        several series, one directive (EMF aggregates the value into each set)."""
        names = tuple(k for k, _ in dimensions)
        chosen = (names,) if sets is None else sets
        if not chosen or any(k not in names for keys in chosen for k in keys):
            raise ValueError(f"{name}: dimension sets {chosen} are not among {names}")
        key = (dimensions, tuple(("service", *keys) for keys in chosen))
        values = self._series.setdefault(key, {}).setdefault(name, [])
        values.append(value)
        if sum(len(series) for series in self._series.values()) >= MAX_METRICS * 10:
            self.flush()  # a long batch: do not hold thousands of series in memory

    def ride(self, fields: Mapping[str, object]) -> None:
        """A log line (INFO) to print on this invocation's metrics document. A batch records
        several: each earlier one is printed on its own line at once, the last rides."""
        if logger.log_level > logging.INFO:  # the level Lambda (or POWERTOOLS_LOG_LEVEL) set
            return
        if self._rider is not None:
            self._print(self._rider)
        self._rider = {k: v for k, v in fields.items() if v is not None}

    def documents(self) -> list[dict[str, Any]]:
        """What `flush` prints, as dicts: documents first, then a rider that fitted none."""
        namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "")
        service = os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined")
        docs: list[_Document] = []
        for (extra, sets), metrics in self._series.items():
            dimensions = {"service": service, **dict(extra)}
            for name, values in metrics.items():
                for start in range(0, len(values), MAX_VALUES):  # a name is in a document once
                    doc = next((d for d in docs if d.takes(dimensions, name)), None)
                    if doc is None:
                        doc = _Document()
                        docs.append(doc)
                    doc.add(dimensions, sets, name, values[start : start + MAX_VALUES])
        timestamp = int(time.time() * 1000)
        rendered = [doc.render(namespace, timestamp) for doc in docs]
        rider = self._rider
        if rider is not None:
            home = next((i for i, d in enumerate(docs) if d.takes_fields(rider)), None)
            if home is None:
                rendered.append(dict(rider))
            else:
                rendered[home].update(rider)
        return rendered

    def flush(self) -> None:
        for document in self.documents():
            self._print(document)
        self.clear()

    def clear(self) -> None:
        self._series.clear()
        self._rider = None

    def log_metrics(self, handler: Callable[P, R]) -> Callable[P, R]:
        """Flush when the handler returns or raises (a timeout or a dead runtime flushes
        nothing, as with Powertools)."""

        @functools.wraps(handler)
        def flushing(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return handler(*args, **kwargs)
            finally:
                self.flush()

        return flushing

    def _print(self, document: Mapping[str, object]) -> None:
        text = json.dumps(document, separators=_COMPACT, default=str)
        if self._write is None:
            print(text)  # stdout: where Lambda's log agent, and EMF, read it
        else:
            self._write(text)


metrics = Emf()


def count(name: str, value: float = 1) -> None:
    """A count with the service dimension only."""
    metrics.count(name, value)


def count_by(name: str, dimension: str, value: str) -> None:
    """A count with the service dimension and one more."""
    metrics.count(name, 1, ((dimension, value),))


def count_each(name: str, dimensions: Mapping[str, str], *, alone: bool = True) -> None:
    """One count under `service` alone (unless `alone` is False) and under `service` plus each
    of `dimensions` in turn: `Receipts` by change and by status are one metric, one value, in one
    directive, where separate names would each cost a directive and a value in every document."""
    sets = (((),) if alone else ()) + tuple((k,) for k in dimensions)
    metrics.count(name, 1, tuple(dimensions.items()), sets)


def status_value(status: str) -> str:
    return status if status in KNOWN_STATUSES else "other"


def error_class(code: int | None) -> str:
    if code is None:
        return "none"
    return ERROR_CLASSES.get(code // 1000, "other")


def reason_value(reason: str) -> str:
    """Give-up reasons as a metric dimension: Twilio's refusal codes folded into one value."""
    return "twilio_rejected" if reason.startswith("twilio_rejected") else reason
