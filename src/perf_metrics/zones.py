"""Time in one place: the zone an account's days are counted in, and all that follows from it.

A "day" of the metrics (SPEC §4-§5) is a calendar day in the account's zone, and so are its
months, its "today" and the hours of day in `peak_hours`. Every one of those is computed here:
the fold's day and hour keys (as SQL), the month seal's "this month" (as SQL), the bounds of a
day window, "today" for a request, calendar months. An account's zone is its `timezone`
setting (SPEC §9), read with its key (`Zone.named`); the fold reads it from `accounts`.

Provider health is platform-wide and absolute, so it stays on UTC (`PLATFORM`), and says so.
"""

from __future__ import annotations

import calendar
import functools
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

# --- the zone of an account --------------------------------------------------------------------


def iso_z(moment: datetime) -> str:
    """RFC 3339 to the second in UTC, with `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Zone:
    """A calendar to count days in: an IANA zone name and its tzinfo."""

    name: str
    tz: tzinfo

    @staticmethod
    @functools.cache
    def named(name: str) -> Zone:
        """The zone of a stored `timezone` setting (a canonical name, `canonical_zone_name`)."""
        return UTC_ZONE if name == "UTC" else Zone(name, zoneinfo.ZoneInfo(name))

    @property
    def is_utc(self) -> bool:
        return self.name == "UTC"

    def today(self, now: datetime) -> date:
        """The calendar date in this zone at the instant `now`."""
        return now.astimezone(self.tz).date()

    def midnight(self, day: date) -> datetime:
        """The instant `day` begins in this zone (in UTC). Where the clocks skip midnight
        (America/Santiago on 2026-09-06 goes from 23:59:59 to 01:00), the first instant of
        the day: the wall time 00:00 read with the offset before the change is that instant."""
        return datetime.combine(day, time(0), self.tz).astimezone(UTC)

    def stamp(self, moment: datetime) -> str:
        """RFC 3339 to the second: `Z` in UTC, else this zone's offset at that instant."""
        if self.is_utc:
            return iso_z(moment)
        return moment.astimezone(self.tz).isoformat(timespec="seconds")

    def hour_of_day(self, moment: datetime) -> int:
        """The wall-clock hour (0-23) in this zone at the instant `moment`."""
        return moment.astimezone(self.tz).hour


UTC_ZONE = Zone("UTC", UTC)
# Provider health: platform-wide, its hours of day are UTC (SPEC §9).
PLATFORM = UTC_ZONE


# Names a zone database carries that are no place's clock: the machine's own zone and the
# placeholder of unset systems.
_NOT_PLACES = frozenset({"localtime", "posixrules", "Factory"})
# What users type for a fixed offset: +05:30, -3, UTC+5, GMT-03:00, Z+1 ... (Etc/GMT+5 is an
# IANA name and passes).
_OFFSET = re.compile(r"^(?:UTC|GMT|UT|Z)?\s*[+-]\s*\d", re.IGNORECASE)


# The zone database's other names of UTC (links to Etc/UTC): all stored as `UTC`, the one
# spelling whose periods keep the `Z` form (SPEC §9).
_UTC_ALIASES = frozenset(
    n.lower()
    for n in ("UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu")
)


def canonical_zone_name(name: str) -> str:
    """The IANA zone `name` names, spelled as the zone database spells it
    (`europe/berlin` -> `Europe/Berlin`; UTC's other names -> `UTC`). Raises ValueError, saying
    what to write instead, for anything else: an empty name, a fixed offset or POSIX string
    (Postgres reads `UTC+5` as five hours *west* of UTC), or a name no zone has."""
    text = name.strip()
    if not text:
        raise ValueError("A timezone is an IANA zone name, such as Europe/Berlin or UTC.")
    if _OFFSET.match(text):
        raise ValueError(
            f"'{name}' is a fixed offset, not a zone: its clock never changes, and Postgres "
            "reads 'UTC+5' as five hours west of UTC. Write the IANA name of the place, such "
            "as Asia/Kolkata (not +05:30) or America/Sao_Paulo (not UTC-3)."
        )
    if text.lower() in _UTC_ALIASES:
        return "UTC"
    canonical = _zone_names().get(text.lower())
    if canonical is None:
        raise ValueError(
            f"Unknown timezone '{name}'. Write an IANA zone name, such as Europe/Berlin, "
            "America/New_York or UTC."
        )
    return canonical


@functools.cache
def _zone_names() -> dict[str, str]:
    """Every zone name the zone database knows, by its lower-case form."""
    return {n.lower(): n for n in zoneinfo.available_timezones() - _NOT_PLACES}


# --- the same in SQL, for the fold (rollups keyed by the account's local days) ------------------

# The zone of the account a call belongs to, as an SQL expression over the fold's rows (the
# fold joins each call's account as `a`).
ACCOUNT_ZONE_SQL = "a.timezone"


def local_day_sql(instant: str, zone: str) -> str:
    """SQL: the calendar date in `zone` at the timestamptz `instant`."""
    return f"({instant} AT TIME ZONE {zone})::date"


def local_hour_sql(instant: str, zone: str) -> str:
    """SQL: the wall-clock hour (0-23) in `zone` at the timestamptz `instant`."""
    return f"date_part('hour', {instant} AT TIME ZONE {zone})::int"


# The westernmost clock of the zone database: UTC-12 (Etc/GMT+12; POSIX signs are inverted).
# A calendar month has ended in every zone once it has ended there, 12 hours after it ends in
# UTC and 26 hours after it ends on the easternmost clock (UTC+14, Pacific/Kiritimati).
WESTERNMOST = "Etc/GMT+12"

# The 1st of the month it is now on the westernmost clock, by the database's clock: the months
# before it have ended in every account's zone. Month rows of the failure rollup are built once
# a month has ended there (rollups: the month seal).
THIS_MONTH_SQL = f"date_trunc('month', now() AT TIME ZONE '{WESTERNMOST}')::date"


def week_of_day_sql(day: str) -> str:
    """SQL: the Monday of the ISO week (Monday to Sunday) of the date `day`."""
    return f"({day} - extract(isodow FROM {day})::int + 1)"


# The Monday of the week it is now on the westernmost clock: the weeks before it have ended in
# every account's zone. The group rollups' week rows are built once a week has ended there.
THIS_WEEK_SQL = week_of_day_sql(f"(now() AT TIME ZONE '{WESTERNMOST}')::date")


def platform_hour_sql(instant: str) -> str:
    """SQL: the hour (a timestamptz) of the timestamptz `instant`, on the platform's UTC: the
    provider rollups' hourly buckets."""
    return f"date_trunc('hour', {instant}, 'UTC')"


# --- calendar arithmetic (the same in every zone) ----------------------------------------------


def month_start(day: date) -> date:
    return day.replace(day=1)


def previous_month_start(day: date) -> date:
    return (month_start(day) - timedelta(days=1)).replace(day=1)


def days_in_month(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def full_months(start: date, end: date) -> tuple[date, date]:
    """[m_lo, m_hi): the 1sts of the calendar months lying wholly inside [start, end];
    an empty range (m_lo == m_hi) when there is none."""
    m_lo = start if start.day == 1 else (start.replace(day=1) + timedelta(days=32)).replace(day=1)
    after = end + timedelta(days=1)
    m_hi = after if after.day == 1 else end.replace(day=1)
    return (m_lo, m_hi) if m_lo < m_hi else (start, start)
