"""Answers kept between requests, exact: a cached answer is served only while the data it was
computed from is unchanged.

Every fold bumps the data version of each account it folded calls of (in the same transaction
as their rollup rows), and the key lookup reads that version in the same snapshot as the
request's queries. An answer is stored under its endpoint and query (metrics/query.py) and
tagged with the version(s) it saw (metrics/versions.py); a request whose versions differ
recomputes. Providers, being platform-wide, is tagged with the sum of all accounts' versions in
the environment. Nothing is served stale, so a dashboard polling an idle account costs one key
lookup, and one that polls a busy account recomputes after each batch, as it must.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    version: Hashable
    body: bytes
    etag: str
    media_type: str = "application/json"
    # An export's Content-Disposition (CSV), None for JSON.
    disposition: str | None = None


class ResponseCache:
    def __init__(self, max_entries: int = 5000) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[Hashable, CachedAnswer] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, version: Hashable) -> CachedAnswer | None:
        if not self.max_entries:
            return None
        entry = self.entries.get(key)
        if entry is None or entry.version != version:
            self.misses += 1
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: Hashable, answer: CachedAnswer) -> None:
        if not self.max_entries:
            return
        self.entries[key] = answer
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
