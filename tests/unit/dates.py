"""Hypothesis strategies for the text a signed webhook may carry in `DateUpdated`/`DateCreated`.

Shared by the parser's unit tests and the ingest handler's property test against moto: the
interesting inputs are the edges of what Python's `datetime` can hold (years 1 and 9999, offsets
up to a day), not only random text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

# fromisoformat accepts offsets strictly inside ±24 hours; timezone() needs the same.
OFFSETS = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59, seconds=59),
    max_value=timedelta(hours=23, minutes=59, seconds=59),
).map(timezone)

EDGES = [
    "9999-12-31T23:59:59-01:00",  # overflows when converted to UTC
    "0001-01-01T00:00:00+01:00",  # the same at the other end
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59+00:00",
    "0001-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00Z",
    "2026-11-27T10:00:00+23:59",
    "2026-11-27T10:00:00-23:59:59.999999",
    "2026-11-27T10:00:00+24:00",
    "2026-11-27T10:00:00.0005Z",
    "2026-11-27",
    "2026-W48-5T10:00Z",
    "20261127T100000Z",
    "",
    " ",
]


def iso_dates() -> st.SearchStrategy[str]:
    """ISO 8601 text of any datetime Python can hold, at any offset, in several spellings."""
    moments = st.datetimes(min_value=datetime.min, max_value=datetime.max, timezones=OFFSETS)
    return st.one_of(
        moments.map(datetime.isoformat),
        moments.map(lambda moment: moment.isoformat(timespec="seconds")),
        moments.map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S%z")),
        st.datetimes(timezones=st.just(UTC)).map(
            lambda moment: moment.isoformat().replace("+00:00", "Z")
        ),
    )


def date_texts() -> st.SearchStrategy[str]:
    """What a DateUpdated field might hold: the edges, any ISO date, or any text at all."""
    return st.one_of(st.sampled_from(EDGES), iso_dates(), st.text(max_size=40))
