"""The latency histograms of the rollups, kept between requests: providers reads a week of
hourly rows per answer, performance up to 90 days of per-model rows; most never change."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics import histogram
from perf_metrics.metrics import queries as q
from perf_metrics.metrics.query import DayQuery, HourQuery

# A stored histogram: its first bin and its counts from there (histogram.add_into).
Counts = tuple[int, np.ndarray]
Key = tuple[Any, ...]  # what is cached, and whose
BINS = histogram.MAX_BIN + 1


@dataclass(frozen=True, slots=True)
class DayHistograms:
    """One account-day's per-model latency histograms, flat: stored count i is `counts[i]`
    calls of (task type, model) `combos[which[i]]` in bin `bins[i]` (its providers' rows
    added up)."""

    combos: tuple[tuple[str, str], ...]
    which: np.ndarray
    bins: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, rows: Sequence[Any]) -> DayHistograms:
        combos: dict[tuple[str, str], int] = {}
        which, bins, counts = [], [], []
        for r in rows:
            if not r.hist:
                continue
            position = combos.setdefault((r.task_type, r.model), len(combos))
            n = len(r.hist)
            which.append(np.full(n, position, dtype=np.int16))
            bins.append(np.arange(r.lower, r.lower + n, dtype=np.int16))
            counts.append(np.asarray(r.hist, dtype=np.int32))
        if not combos:
            empty = np.zeros(0, dtype=np.int16)
            return cls((), empty, empty, np.zeros(0, dtype=np.int32))
        return cls(
            tuple(combos), np.concatenate(which), np.concatenate(bins), np.concatenate(counts)
        )


def _nbytes(value: Any) -> int:
    """What a cached histogram holds in memory (its arrays; the rest is small)."""
    if isinstance(value, DayHistograms):
        return value.which.nbytes + value.bins.nbytes + value.counts.nbytes + 200
    return int(value[1].nbytes) + 100


class HistogramCache:
    """The latency histograms of rollup rows (or of a day's rows), kept between requests.

    A row's count of calls is the sum of its histogram and only grows, and so does a day's, so
    an entry is fresh exactly when its count matches: each request reads the (cheap) index of
    its window and fetches only the histograms that are new or changed. Past hours and days
    rarely change; a window then moves a few kilobytes instead of a few hundred or thousand.
    """

    def __init__(self, max_bytes: int = 256 * 2**20, max_windows: int = 64) -> None:
        # The rows' and days' histograms, least recently used dropped first past max_bytes.
        self.max_bytes = max_bytes
        self.bytes = 0
        self.entries: OrderedDict[Key, tuple[int, Any]] = OrderedDict()
        # Performance's windows, merged (WindowHistograms): a dashboard re-polling the same
        # days adds up only the days that changed since. Each holds a dense array per model
        # (8 KB), and keeps its days' histograms alive (shared with `entries` while they are
        # there): up to ~7 MB for the largest account of the 10M benchmark over 90 days.
        self.max_windows = max_windows
        self.windows: OrderedDict[Key, WindowHistograms] = OrderedDict()

    async def _values(
        self,
        index: Sequence[tuple[Key, int]],
        fetch: Callable[[list[Key]], Awaitable[dict[Key, Any]]],
    ) -> list[tuple[Key, Any]]:
        """(key, value) of every (key, calls) of `index`: from the cache when fresh, else by
        `fetch(keys)`, read in the same snapshot as the index. Those are used from here, not
        re-read from the shared cache: a concurrent request may store another snapshot's."""
        out: list[tuple[Key, Any]] = []
        missing: list[tuple[Key, int]] = []
        for key, calls in index:
            entry = self.entries.get(key)
            if entry is not None and entry[0] == calls:
                self.entries.move_to_end(key)
                out.append((key, entry[1]))
            else:
                missing.append((key, calls))
        if missing:
            fetched = await fetch([key for key, _ in missing])
            for key, calls in missing:
                out.append((key, fetched[key]))
                old = self.entries.pop(key, None)
                if old is not None:
                    self.bytes -= _nbytes(old[1])
                self.entries[key] = (calls, fetched[key])
                self.bytes += _nbytes(fetched[key])
        while self.bytes > self.max_bytes and self.entries:
            self.bytes -= _nbytes(self.entries.popitem(last=False)[1][1])
        return out

    async def window(
        self, conn: AsyncConnection, query: HourQuery
    ) -> list[tuple[str, datetime, Counts]]:
        """(provider, bucket, counts) of every provider row holding the window's latencies."""
        environment = query.scope.environment
        index = [
            (("provider", environment, r.grain, r.provider, r.bucket), r.served_calls)
            for r in await q.select_histogram_index(conn, query)
        ]

        async def fetch(keys: list[Key]) -> dict[Key, Any]:
            rows = await q.select_histograms(conn, query, [key[2:] for key in keys])
            return {
                ("provider", environment, f.grain, f.provider, f.bucket): (
                    f.lower,
                    np.asarray(f.hist, dtype=np.int64),
                )
                for f in rows
            }

        return [(key[3], key[4], counts) for key, counts in await self._values(index, fetch)]

    async def model_window(
        self, conn: AsyncConnection, query: DayQuery
    ) -> dict[tuple[str, str], np.ndarray]:
        """Per (task type, served model) of the window (of the query's task type, if any):
        its latencies as one dense histogram."""
        scope, window = query.scope, query.window
        prefix = ("model", scope.account_id, scope.environment, window.zone.name)
        index = [((*prefix, r.day), r.calls) for r in await q.select_model_day_calls(conn, query)]

        async def fetch(keys: list[Key]) -> dict[Key, Any]:
            rows = await q.select_model_day_histograms(conn, query, [key[-1] for key in keys])
            by_day: dict[Any, list[Any]] = {key[-1]: [] for key in keys}
            for r in rows:
                by_day[r.day].append(r)
            return {(*prefix, day): DayHistograms.of(day_rows) for day, day_rows in by_day.items()}

        calls_of = dict(index)
        days = {key[-1]: (calls_of[key], d) for key, d in await self._values(index, fetch)}
        key = (*prefix, window.start, window.end)
        merged = self.windows.get(key)
        merged = WindowHistograms.of(days) if merged is None else merged.moved_to(days)
        self.windows[key] = merged
        self.windows.move_to_end(key)
        while len(self.windows) > self.max_windows:
            self.windows.popitem(last=False)
        task = query.filters.task_type
        return {
            combo: merged.dense[i]
            for combo, i in merged.combos.items()
            if (task is None or combo[0] == task) and merged.dense[i].any()
        }


@dataclass(frozen=True, slots=True)
class WindowHistograms:
    """A window's per-model histograms, merged: `dense[combos[(task, model)]]`, from the days
    `days` (day -> (calls, DayHistograms)). Never changed in place: a request may still read
    the arrays another one has replaced."""

    days: dict[Any, tuple[int, DayHistograms]]
    combos: dict[tuple[str, str], int]
    dense: np.ndarray

    @classmethod
    def of(cls, days: dict[Any, tuple[int, DayHistograms]]) -> WindowHistograms:
        empty = cls({}, {}, np.zeros((0, BINS), dtype=np.int64))
        return empty.moved_to(days)

    def moved_to(self, days: dict[Any, tuple[int, DayHistograms]]) -> WindowHistograms:
        """The same window over `days`: the days that differ (by their calls) taken out and
        put in again, the others as they are. A window whose days have not changed since is
        itself; one of a busy account changes by today alone."""
        gone = [d for day, (calls, d) in self.days.items() if days.get(day, (None,))[0] != calls]
        came = [d for day, (calls, d) in days.items() if self.days.get(day, (None,))[0] != calls]
        if not gone and not came:
            return self
        combos = dict(self.combos)
        for d in came:
            for combo in d.combos:
                combos.setdefault(combo, len(combos))
        flat, weights = [], []
        for sign, changed in ((-1, gone), (1, came)):
            for d in changed:
                if not len(d.combos):
                    continue
                position = np.array([combos[c] for c in d.combos], dtype=np.int64)
                flat.append(position[d.which] * BINS + d.bins)
                weights.append(d.counts.astype(np.int64) * sign)
        dense = np.zeros((len(combos), BINS), dtype=np.int64)
        dense[: len(self.combos)] = self.dense
        if flat:
            delta = np.bincount(
                np.concatenate(flat), weights=np.concatenate(weights), minlength=dense.size
            )
            dense += np.rint(delta).astype(np.int64).reshape(dense.shape)
        return WindowHistograms(days, combos, dense)
