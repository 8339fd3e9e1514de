"""Rounding: the integer fast paths agree with half-up Decimal rounding of the exact ratio."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from perf_metrics.metrics.numbers import mean_ms, rate, rnd


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
