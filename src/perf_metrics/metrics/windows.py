"""Time windows and query parameters (SPEC §4): the one home for window rules.

Parameters are parsed strictly from the raw query string, before any SQL runs: digits only for
integers, one occurrence per parameter, no unknown names, nothing empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.datastructures import QueryParams

from perf_metrics.errors import InvalidParameter
from perf_metrics.zones import UTC_ZONE, Zone, iso_z

FIVE_MINUTES = timedelta(minutes=5)
# No call is older (ingest rejects them), and windows ending near year 1 overflow `datetime`.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_DIGITS = re.compile(r"^[0-9]{1,6}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# RFC 3339 date-time: seconds required, optional fraction, Z or a numeric offset.
_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


@dataclass(frozen=True, slots=True)
class DayWindow:
    """Whole days `[start, end]` (both inclusive) of the calendar in `zone`."""

    start: date
    end: date
    zone: Zone = UTC_ZONE

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def start_at(self) -> datetime:
        return self.zone.midnight(self.start)

    @property
    def end_before(self) -> datetime:
        """Exclusive upper bound: the midnight after `end`."""
        return self.zone.midnight(self.end + timedelta(days=1))

    def over(self, start: date, end: date) -> DayWindow:
        """Other days of the same calendar."""
        return DayWindow(start, end, self.zone)

    def period(self) -> dict[str, Any]:
        """The window's first instant and last second, in the zone's offsets (SPEC §9)."""
        return {
            "start_date": self.zone.stamp(self.start_at),
            "end_date": self.zone.stamp(self.end_before - timedelta(seconds=1)),
            "timezone": self.zone.name,
        }

    def date_period(self) -> dict[str, Any]:
        """The window as its first and last local dates (daily's period)."""
        return {
            "start_date": self.start.isoformat(),
            "end_date": self.end.isoformat(),
            "timezone": self.zone.name,
        }

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]


@dataclass(frozen=True, slots=True)
class HourWindow:
    """`[start, end)`, both on the 5-minute UTC grid."""

    start: datetime
    end: datetime
    hours: int

    def previous(self) -> HourWindow:
        return HourWindow(self.start - timedelta(hours=self.hours), self.start, self.hours)

    def period(self) -> dict[str, Any]:
        return {"start_time": iso_z(self.start), "end_time": iso_z(self.end), "hours": self.hours}


def floor_5min(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(minute=moment.minute - moment.minute % 5, second=0, microsecond=0)


class Params:
    """The request's query parameters, checked against the names an endpoint accepts."""

    def __init__(
        self, query: QueryParams, allowed: tuple[str, ...], repeatable: tuple[str, ...] = ()
    ) -> None:
        self.values: dict[str, str] = {}
        self.repeated: dict[str, list[str]] = {name: [] for name in repeatable}
        for name, value in query.multi_items():
            if name not in allowed:
                raise InvalidParameter(
                    f"Unknown parameter '{name}'. This endpoint accepts: {', '.join(allowed)}.",
                    param=name,
                )
            if value == "":
                raise InvalidParameter(f"Parameter '{name}' is empty.", param=name)
            if name in self.repeated:
                self.repeated[name].append(value)
                continue
            if name in self.values:
                raise InvalidParameter(f"Parameter '{name}' is given more than once.", param=name)
            self.values[name] = value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.values.get(name)
        if raw is None:
            return default
        if not _DIGITS.match(raw) or not low <= int(raw) <= high:
            raise InvalidParameter(
                f"'{name}' must be a whole number from {low} to {high}.", param=name
            )
        return int(raw)

    def end_date(self, today: date, zone: Zone) -> date:
        raw = self.values.get("end_date")
        if raw is None:
            return today
        try:
            if not _DATE.match(raw):
                raise ValueError
            value = date.fromisoformat(raw)
        except ValueError:
            raise InvalidParameter(
                "'end_date' must be a date YYYY-MM-DD.", param="end_date"
            ) from None
        if value > today:
            raise InvalidParameter(
                f"'end_date' must not be in the future ({zone.name}).", param="end_date"
            )
        if value < EARLIEST.date():
            raise InvalidParameter("'end_date' must be 1970-01-01 or later.", param="end_date")
        return value

    def end_time(self, now: datetime) -> datetime:
        raw = self.values.get("end_time")
        if raw is None:
            return now
        value = None
        if _RFC3339.match(raw):
            try:
                # fromisoformat takes at most 6 fraction digits and an upper-case Z.
                text = re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", raw.upper().replace(" ", "T"))
                value = datetime.fromisoformat(text)
            except ValueError:
                value = None
        if value is None or value.tzinfo is None:
            raise InvalidParameter(
                "'end_time' must be an RFC 3339 timestamp with an offset, e.g. "
                "2026-01-31T10:00:00Z.",
                param="end_time",
            )
        if value > now:
            raise InvalidParameter("'end_time' must not be in the future.", param="end_time")
        if value < EARLIEST:
            raise InvalidParameter(
                "'end_time' must be 1970-01-01T00:00:00Z or later.", param="end_time"
            )
        return value

    def choice(self, name: str, options: tuple[str, ...]) -> str | None:
        raw = self.values.get(name)
        if raw is not None and raw not in options:
            raise InvalidParameter(f"'{name}' must be one of: {', '.join(options)}.", param=name)
        return raw


def day_window(params: Params, default_days: int, today: date, zone: Zone) -> DayWindow:
    """`days` whole days of `zone`'s calendar ending `end_date` (default: `today` there)."""
    days = params.integer("days", default_days, 1, 90)
    end = params.end_date(today, zone)
    return DayWindow(end - timedelta(days=days - 1), end, zone)


def hour_window(params: Params, now: datetime) -> HourWindow:
    hours = params.integer("hours", 24, 1, 168)
    end = floor_5min(params.end_time(now))
    return HourWindow(end - timedelta(hours=hours), end, hours)
