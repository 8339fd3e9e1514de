"""One question to the rollups: whose calls, over which window, narrowed by which filters.

Every answer module and every `select_*` takes one `MetricsQuery`, so that a new filter (or a
timezone) is one new field here, not an edit of every call site. It is frozen and hashable:
with the endpoint's name it keys the answer cache of the account endpoints, so two requests
share an answer when they ask the same question (providers, platform-wide, keys on the
environment and window alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import Generic, TypeVar

from perf_metrics.metrics.windows import DayWindow, HourWindow

W = TypeVar("W", DayWindow, HourWindow)


@dataclass(frozen=True, slots=True)
class Scope:
    """One account's calls in one environment (live or test): what a customer key may read.
    Provider health is platform-wide and reads only `environment`."""

    account_id: str
    environment: str


@dataclass(frozen=True, slots=True)
class Filters:
    """What narrows the calls counted, beyond the scope and the window."""

    task_type: str | None = None


@dataclass(frozen=True, slots=True)
class Grouping:
    """A breakdown's question beyond the window (SPEC §10): the dimension, the values asked
    for (None: all), the page size, where the page starts (after the previous page's last
    group: its exact cost, calls and value), and whether each group gets its daily series."""

    group_by: str
    values: tuple[str, ...] | None = None
    limit: int = 20
    after: tuple[str, int, str | None] | None = None
    series: bool = False


@dataclass(frozen=True, slots=True)
class MetricsQuery(Generic[W]):
    scope: Scope
    window: W
    filters: Filters = field(default_factory=Filters)
    # The day the request is made in the account's zone, for the answers that depend on it
    # (daily's trends leave out an unfinished today); None for the others.
    today: date | None = None
    # How the answer is written: "json", or "csv" where an endpoint exports (SPEC §10). Not a
    # part of the question, but of the cached body.
    format: str = "json"
    grouping: Grouping | None = None  # breakdown's
    baseline_model: str | None = None  # customer's vs_baseline (SPEC §14); None: gpt-4o

    def over(self, window: W) -> MetricsQuery[W]:
        """The same question over another window (a previous period, a longer range)."""
        return replace(self, window=window)


DayQuery = MetricsQuery[DayWindow]
HourQuery = MetricsQuery[HourWindow]
