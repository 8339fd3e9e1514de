"""Rounding: the integer fast paths agree with half-up Decimal rounding of the exact ratio."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from perf_metrics.metrics.numbers import mean_ms, rate, ratio, rnd, rnd_ratio


def _half_up(n: int, d: int, places: int) -> Decimal:
    return (Decimal(n) / Decimal(d)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


@given(st.integers(0, 10**12), st.integers(1, 10**9))
def test_rate_is_half_up_to_3_decimals(n: int, d: int) -> None:
    assert rate(n, d) == float(_half_up(n, d, 3))


@given(st.integers(0, 10**12), st.integers(1, 10**9))
def test_mean_ms_is_half_up_to_whole_ms(n: int, d: int) -> None:
    assert mean_ms(n, d) == int(_half_up(n, d, 0))


def test_ties_round_up_and_zero_denominators_are_null() -> None:
    assert rate(1, 8) == 0.125
    assert rate(1, 2000) == 0.001  # 0.0005 -> 0.001
    assert mean_ms(5, 2) == 3
    assert rnd(Decimal("2.675"), 2) == 2.68  # the float 2.675 would round to 2.67
    assert rate(3, 0) is None and mean_ms(3, 0) is None


def test_rnd_ratio_is_rnd_of_the_exact_ratio() -> None:
    # Integers instead of Fraction and Decimal division: the same rounding, half-up ties too.
    rng = random.Random(16)
    cases: list[tuple[Decimal | int, Decimal | int, int]] = [
        (Decimal("0.125"), 1, 2),
        (Decimal("0.0000050"), 1, 5),
        (1, 8, 3),
        (0, 5, 3),
    ]
    for i in range(2000):
        cost = Decimal(rng.randrange(10**15)) / Decimal(10**12)
        count = rng.randrange(1, 10**6)
        window = Decimal(rng.randrange(1, 10**9)) / 1000
        cases.append((cost, count if i % 2 else window, rng.choice((2, 3, 5))))
    for n, d, places in cases:
        assert rnd_ratio(n, d, places) == rnd(ratio(n, d), places)
    assert rnd_ratio(Decimal(1), 0, 3) is None
