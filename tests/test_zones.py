"""zones.py: the names a timezone setting accepts (SPEC §9), and the calendar arithmetic."""

from __future__ import annotations

from datetime import date

import pytest

from perf_metrics.zones import canonical_zone_name, full_months


@pytest.fixture(autouse=True)
def clean_tables() -> None:
    """Overrides the conftest's table cleaner: these tests need no database."""


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("UTC", "UTC"),
        ("Europe/Berlin", "Europe/Berlin"),
        ("europe/berlin", "Europe/Berlin"),
        ("  ASIA/KOLKATA ", "Asia/Kolkata"),
        ("america/new_york", "America/New_York"),
        ("Asia/Kathmandu", "Asia/Kathmandu"),
        ("Australia/Lord_Howe", "Australia/Lord_Howe"),
        ("Pacific/Chatham", "Pacific/Chatham"),
        ("Pacific/Kiritimati", "Pacific/Kiritimati"),
        ("etc/gmt+12", "Etc/GMT+12"),  # an IANA name (its sign is POSIX's), not an offset
    ],
)
def test_zone_names_are_taken_in_their_canonical_spelling(given: str, canonical: str) -> None:
    assert canonical_zone_name(given) == canonical


@pytest.mark.parametrize("offset", ["+05:30", "-3", "UTC+5", "utc-05:00", "GMT-3", "GMT+0", "Z+1"])
def test_fixed_offsets_are_refused_with_what_to_write_instead(offset: str) -> None:
    with pytest.raises(ValueError, match="fixed offset") as refused:
        canonical_zone_name(offset)
    assert "Asia/Kolkata" in str(refused.value)
    assert "west" in str(refused.value)  # why: Postgres reads UTC+5 the POSIX way


@pytest.mark.parametrize("name", ["Mars/Olympus", "Berlin", "localtime", "Factory", "posixrules"])
def test_names_of_no_place_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="Unknown timezone") as refused:
        canonical_zone_name(name)
    assert "Europe/Berlin" in str(refused.value)


@pytest.mark.parametrize("blank", ["", "   "])
def test_an_empty_name_is_refused(blank: str) -> None:
    with pytest.raises(ValueError, match="IANA zone name"):
        canonical_zone_name(blank)


@pytest.mark.parametrize(
    ("start", "end", "months"),
    [
        (date(2024, 1, 1), date(2024, 3, 31), (date(2024, 1, 1), date(2024, 4, 1))),
        (date(2024, 1, 2), date(2024, 3, 30), (date(2024, 2, 1), date(2024, 3, 1))),
        (date(2024, 2, 1), date(2024, 2, 29), (date(2024, 2, 1), date(2024, 3, 1))),  # leap
        (date(2024, 2, 2), date(2024, 2, 29), (date(2024, 2, 2), date(2024, 2, 2))),  # none
        (date(2023, 12, 1), date(2024, 1, 31), (date(2023, 12, 1), date(2024, 2, 1))),
    ],
)
def test_full_months_are_the_calendar_months_wholly_inside(
    start: date, end: date, months: tuple[date, date]
) -> None:
    assert full_months(start, end) == months
