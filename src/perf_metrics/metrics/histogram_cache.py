"""The latency histograms of the provider rollups, kept between requests (providers reads a
week of them per answer; most never change)."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.metrics import queries as q
from perf_metrics.metrics.query import HourQuery


class HistogramCache:
    """The latency histograms of provider rollup rows, kept between requests.

    A row's `served_calls` is the sum of its histogram and only grows, so an entry is fresh
    exactly when its count matches the row's: each request reads the (cheap) row index of its
    window and fetches only the histograms that are new or changed. Past hours rarely change;
    a 168-hour window then moves a few kilobytes instead of a few hundred.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[tuple[str, str, str, datetime], tuple[int, tuple[int, Any]]]
        self.entries = OrderedDict()

    async def window(
        self, conn: AsyncConnection, query: HourQuery
    ) -> list[tuple[str, datetime, tuple[int, Any]]]:
        """(provider, bucket, (first bin, counts)) of every row holding the window's latencies."""
        environment = query.scope.environment
        index = await q.select_histogram_index(conn, query)
        out: list[tuple[str, datetime, tuple[int, Any]]] = []
        missing = []
        for r in index:
            key = (environment, r.grain, r.provider, r.bucket)
            entry = self.entries.get(key)
            if entry is not None and entry[0] == r.served_calls:
                self.entries.move_to_end(key)
                out.append((r.provider, r.bucket, entry[1]))
            else:
                missing.append(r)
        if missing:
            # Read in this request's snapshot, like the index: used from here, not re-read from
            # the shared cache (a concurrent request may store another snapshot's version).
            keys = [(r.grain, r.provider, r.bucket) for r in missing]
            fetched = {
                (f.grain, f.provider, f.bucket): f
                for f in await q.select_histograms(conn, query, keys)
            }
            for r in missing:
                f = fetched[(r.grain, r.provider, r.bucket)]
                counts = (f.lower, np.asarray(f.hist, dtype=np.int64))
                out.append((r.provider, r.bucket, counts))
                self.entries[(environment, r.grain, r.provider, r.bucket)] = (
                    f.served_calls,
                    counts,
                )
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
        return out
