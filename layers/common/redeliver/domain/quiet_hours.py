"""Quiet hours: no resend at night in the recipient's own time (policy v2, `quiet_hours`).

Pure domain. US telemarketing rules allow texts only from 8 am to 9 pm in the recipient's time
zone, so the window is read on the recipient's wall clock, not the worker's: its zone comes from
the phone number (Google's libphonenumber, `phonenumbers`), `default_timezone` when the number
names none. A window whose start is after its end crosses midnight (`21:00`-`08:00`).

A number may name several zones (a mobile prefix shared across a country, a toll-free number).
A send is quiet when it falls inside the window in any of them, and waits until it is outside in
all of them; when they span more than `MAX_ZONE_SPREAD` of UTC offsets (toll-free numbers name
every zone of North America), the number says nothing useful and `default_timezone` decides.

Wall-clock times that do not exist (the hour skipped when clocks go forward) resolve as Python's
`zoneinfo` does, to the instant one offset later; both times an hour repeats (clocks going back)
are inside or outside the window alike, since the test is on the wall clock. An end inside the
repeated hour is its first time, or, for a send already past that (02:15 the second time, in a
window ending 02:30), its second: a window's end is never an instant already past.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

RECIPIENT = "recipient"
UNKNOWN_ZONE = "Etc/Unknown"  # what phonenumbers answers for a number without a known zone
MAX_ZONE_SPREAD = timedelta(hours=6)


class UnknownZone(ValueError):
    """Not a time zone name of the IANA database."""


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time
    timezone: str  # RECIPIENT, or an IANA zone for every recipient
    default_timezone: str  # when the recipient's number names no zone

    def until(self, address: str | None, moment: datetime) -> datetime | None:
        """When a send at `moment` to `address` may go out: None if it may go now, else the end
        of the quiet window (UTC)."""
        zones = self.zones(address, moment)
        send_at = moment
        for _ in range(len(zones) + 1):  # each pass leaves one zone's window; at most all
            later = max(_window_end(self, zone, send_at) or send_at for zone in zones)
            if later == send_at:
                break
            send_at = later
        return None if send_at == moment else send_at.astimezone(UTC)

    def zones(self, address: str | None, moment: datetime) -> tuple[ZoneInfo, ...]:
        if self.timezone != RECIPIENT:
            return (zone(self.timezone),)
        names = zones_of_number(address) if address else ()
        found = tuple(zone(name) for name in names)
        offsets = [moment.astimezone(z).utcoffset() or timedelta() for z in found]
        if not found or max(offsets) - min(offsets) > MAX_ZONE_SPREAD:
            return (zone(self.default_timezone),)
        return found


def _window_end(quiet: QuietHours, zone: ZoneInfo, moment: datetime) -> datetime | None:
    """The end of the window `moment` falls in, on `zone`'s wall clock; None if outside."""
    local = moment.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        inside, end_day = quiet.start <= wall < quiet.end, local.date()
    else:  # across midnight: from start tonight, or until end this morning
        inside = wall >= quiet.start or wall < quiet.end
        end_day = local.date() + timedelta(days=1) if wall >= quiet.start else local.date()
    if not inside:
        return None
    end = datetime.combine(end_day, quiet.end, tzinfo=zone)
    if end.astimezone(UTC) <= moment.astimezone(UTC):  # in UTC: within one zone, fold is ignored
        end = end.replace(fold=1)  # inside the repeated hour, its first time past: the second
    return end


def zone(name: str) -> ZoneInfo:
    # zoneinfo (and the tzdata it reads) only where a policy has quiet hours: it is ~2 ms of
    # every retry container's cold start, and most policies have none.
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownZone(name) from None


@lru_cache(maxsize=1024)
def zones_of_number(address: str) -> tuple[str, ...]:
    """The IANA zones a phone number's prefix belongs to (`whatsapp:` and other channel
    prefixes dropped); empty when it is not a phone number or names none."""
    import phonenumbers  # noqa: PLC0415 - its zone tables cost cold-start time: only when asked
    from phonenumbers import timezone as number_zones  # noqa: PLC0415

    number = address.rpartition(":")[2].strip()
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ()
    names = number_zones.time_zones_for_number(parsed)
    return tuple(name for name in names if name != UNKNOWN_ZONE)


def e164(address: str | None) -> str | None:
    """The E.164 phone number of a messaging address (`+1555...`, `whatsapp:+1555...`), or None
    for anything else (a chat identity, a Messenger id)."""
    if not address:
        return None
    number = address.rpartition(":")[2].strip()
    if number.startswith("+") and number[1:].isdigit() and 2 <= len(number) <= 16:
        return number
    return None


def is_whatsapp(address: str | None) -> bool:
    return bool(address) and str(address).lower().startswith("whatsapp:")
