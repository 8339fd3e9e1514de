"""What several answers compute alike from rollup rows: per-model statistics, per-task call
counts. All arithmetic is exact (int counts, Decimal money, Fraction ratios) until `numbers`
rounds it, once, in the answer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from perf_metrics.metrics.numbers import ratio

ZERO = Decimal(0)


@dataclass(slots=True)
class ModelStats:
    calls: int = 0
    successes: int = 0
    cost: Decimal = ZERO
    latency_sum: int = 0
    quality_sum: Decimal = ZERO
    quality_n: int = 0

    def add(self, row: Any) -> None:
        self.calls += row.calls
        self.successes += row.successes
        self.cost += row.cost_usd
        self.latency_sum += row.latency_sum
        self.quality_sum += row.quality_sum
        self.quality_n += row.quality_n

    @property
    def quality(self) -> Fraction | None:
        return ratio(self.quality_sum, self.quality_n)

    @property
    def avg_cost(self) -> Fraction:
        return Fraction(self.cost) / self.calls

    @property
    def effective_quality(self) -> Fraction | None:
        quality = self.quality
        if quality is None:
            return None
        return quality * Fraction(self.successes, self.calls)


def by_model(rows: Any) -> dict[str, ModelStats]:
    stats: dict[str, ModelStats] = defaultdict(ModelStats)
    for row in rows:
        stats[row.model].add(row)
    return stats


def task_calls(rows: Any) -> dict[str, int]:
    calls: dict[str, int] = defaultdict(int)
    for row in rows:
        calls[row.task_type] += row.calls
    return calls
