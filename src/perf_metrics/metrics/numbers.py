"""Rounding (SPEC §4, docs/metrics.md): half-up, once, on exact values.

Money arrives as exact Decimals (NUMERIC sums), rates as integer counts; both are kept exact
(Decimal / Fraction) until the single rounding here.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction

_CTX = Context(prec=60)
Number = Decimal | Fraction | int


def _decimal(value: Number) -> Decimal:
    if isinstance(value, Fraction):
        return _CTX.divide(Decimal(value.numerator), Decimal(value.denominator))
    return Decimal(value)


_QUANTA = [Decimal(1).scaleb(-places) for places in range(13)]


def rnd(value: Number | None, places: int) -> float | None:
    if value is None:
        return None
    return float(_decimal(value).quantize(_QUANTA[places], rounding=ROUND_HALF_UP, context=_CTX))


def rnd_int(value: Number | None) -> int | None:
    if value is None:
        return None
    return int(_decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP, context=_CTX))


def ratio(numerator: Number, denominator: Number) -> Fraction | None:
    """An exact ratio; None over zero (SPEC §4: an average or rate over zero calls is null)."""
    if not denominator:
        return None
    return Fraction(numerator) / Fraction(denominator)


def money(value: Number) -> float:
    return rnd(value, 2) or 0.0


def rnd_ratio(numerator: Number, denominator: Number, places: int) -> float | None:
    """rnd(ratio(numerator, denominator), places) for non-negative values, in integers: no
    Fraction or Decimal division (a breakdown's CSV rounds three ratios a group, for tens of
    thousands of groups)."""
    if not denominator:
        return None
    a, b = _integer_ratio(numerator)
    c, d = _integer_ratio(denominator)
    rounded: float = _half_up_ratio(a * d, b * c, places) / pow(10, places)
    return rounded


def _integer_ratio(value: Number) -> tuple[int, int]:
    return (value, 1) if isinstance(value, int) else value.as_integer_ratio()


def per_call_money(total: Number, calls: int) -> float | None:
    return rnd_ratio(total, calls, 5)


def _half_up_ratio(numerator: int, denominator: int, places: int) -> int:
    """round_half_up(numerator / denominator * 10**places) for non-negative integers."""
    scaled: int = numerator * pow(10, places)
    return (2 * scaled + denominator) // (2 * denominator)


def rate(numerator: int, denominator: int) -> float | None:
    """A share of counts, 3 decimals. Integer arithmetic: the hot path of every endpoint.
    (int / int is correctly rounded, so it is the same float as float("0.123").)"""
    if not denominator:
        return None
    return _half_up_ratio(numerator, denominator, 3) / 1000


def mean_ms(total: int, count: int) -> int | None:
    if not count:
        return None
    return _half_up_ratio(total, count, 0)


def largest_first(counts: dict[str, int]) -> list[str]:
    """Keys by count descending, ties by name ascending (SPEC §4)."""
    return sorted(counts, key=lambda k: (-counts[k], k))
