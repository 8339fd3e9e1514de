"""Time in one place: the zone an account's days are counted in, and all that follows from it.

A "day" of the metrics (SPEC §4-§5) is a calendar day in the account's zone, and so are its
months, its "today" and the hours of day in `peak_hours`. Every one of those is computed here:
the fold's day and hour keys (as SQL), the month seal's "this month" (as SQL), the bounds of a
day window, "today" for a request, calendar months. Everyone is in UTC until accounts carry a
zone of their own (SPEC §9); that change is then one of data (`zone_of_account`, the zone SQL
below), not of code paths.

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


@dataclass(frozen=True, slots=True)
class Zone:
    """A calendar to count days in: an IANA zone name and its tzinfo."""

    name: str
    tz: tzinfo

    def today(self, now: datetime) -> date:
        """The calendar date in this zone at the instant `now`."""
        return now.astimezone(self.tz).date()

    def midnight(self, day: date) -> datetime:
        """The instant `day` begins in this zone."""
        return datetime.combine(day, time(0), self.tz)

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


def canonical_zone_name(name: str) -> str:
    """The IANA zone `name` names, spelled as the zone database spells it
    (`europe/berlin` -> `Europe/Berlin`). Raises ValueError, saying what to write instead, for
    anything else: an empty name, a fixed offset or POSIX string (Postgres reads `UTC+5` as five
    hours *west* of UTC), or a name no zone has."""
    text = name.strip()
    if not text:
        raise ValueError("A timezone is an IANA zone name, such as Europe/Berlin or UTC.")
    if _OFFSET.match(text):
        raise ValueError(
            f"'{name}' is a fixed offset, not a zone: its clock never changes, and Postgres "
            "reads 'UTC+5' as five hours west of UTC. Write the IANA name of the place, such "
            "as Asia/Kolkata (not +05:30) or America/Sao_Paulo (not UTC-3)."
        )
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


def zone_of_account(account_id: str) -> Zone:
    """The zone `account_id`'s days are counted in: UTC for every account until accounts
    carry a zone of their own."""
    return UTC_ZONE


# --- the same in SQL, for the fold (rollups keyed by the account's local days) ------------------

# The zone of the account a call belongs to, as an SQL expression over the fold's rows.
ACCOUNT_ZONE_SQL = "'UTC'"


def local_day_sql(instant: str, zone: str = ACCOUNT_ZONE_SQL) -> str:
    """SQL: the calendar date in `zone` at the timestamptz `instant`."""
    return f"({instant} AT TIME ZONE {zone})::date"


def local_hour_sql(instant: str, zone: str = ACCOUNT_ZONE_SQL) -> str:
    """SQL: the wall-clock hour (0-23) in `zone` at the timestamptz `instant`."""
    return f"extract(hour FROM {instant} AT TIME ZONE {zone})::int"


# The 1st of the month it is now, by the database's clock. Month rows of the failure rollup are
# built once a month has ended (rollups: the month seal).
THIS_MONTH_SQL = "date_trunc('month', now() AT TIME ZONE 'UTC')::date"


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
