"""Latency histograms: the bins of the SQL function `latency_bin` and percentiles from them.

Bins are exact below 100 ms (bin = the latency), then logarithmic: bin 100 + k holds
[100 g^k, 100 g^(k+1)) with g = 1.01 / 0.99, so its representative value 100 g^k * 2g/(1+g)
is within 1% of every latency in it. Rounding to whole milliseconds adds at most 0.5%.
Histograms are `int[]` in Postgres whose subscripts are bin numbers; they add bin-wise, so any
set of them merges exactly.
"""

from __future__ import annotations

import math

import numpy as np

EXACT_BELOW = 100
GAMMA = 1.01 / 0.99
MAX_BIN = EXACT_BELOW + math.ceil(math.log((2**31) / EXACT_BELOW) / math.log(GAMMA)) + 1


def latency_bin(ms: int) -> int:
    if ms < EXACT_BELOW:
        return ms
    return EXACT_BELOW + math.floor(math.log(ms / EXACT_BELOW) / math.log(GAMMA))


def bin_value(b: int) -> int:
    if b < EXACT_BELOW:
        return b
    low = EXACT_BELOW * GAMMA ** (b - EXACT_BELOW)
    return round(low * 2 * GAMMA / (1 + GAMMA))


def empty() -> np.ndarray:
    return np.zeros(MAX_BIN + 1, dtype=np.int64)


def add_into(dense: np.ndarray, lower: int | None, counts: np.ndarray | None) -> None:
    """Add a stored histogram (first subscript `lower`, then its counts) into `dense`."""
    if lower is None or counts is None or not len(counts):
        return
    dense[lower : lower + len(counts)] += counts


def percentile(dense: np.ndarray, percent: int) -> int | None:
    """Nearest-rank percentile: the value at rank ceil(percent/100 * n) of sorted latencies."""
    n = int(dense.sum())
    if n == 0:
        return None
    rank = max(1, -(-percent * n // 100))  # exact integer ceil
    index = int(np.searchsorted(np.cumsum(dense), rank))
    return bin_value(index)
