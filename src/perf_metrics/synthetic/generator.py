"""A deterministic generator of a realistic synthetic call log (SPEC §2).

`plan_accounts` draws a Zipf-skewed set of accounts; `generate_calls` yields chunks of call
records as JSON-ready dicts. Every record obeys the SPEC §2 consistency rules. The same
arguments always give the same records (whatever `chunk_size` is); another seed gives others.

How the numbers are made:
- Volume: a minute-by-minute intensity (UTC business-hours peaks, weekends 40% lower, slight
  growth, a little day-to-day noise) split exactly into `calls` by one multinomial draw, so the
  log comes out in time order. Accounts are drawn by weight for each call.
- Each call: a task (per-account task mix), a complexity, the router's first-choice model
  (per-task model mix, tilted by the account's cost/quality taste, its preferred model and the
  complexity), log-normal token counts per task, a cost ceiling check that may downgrade the
  model, then failures: provider-side at a small baseline plus a few provider incidents (10-40
  minutes in which 30-70% of a provider's first-choice calls fail and latency is 1.5-3x), and
  answer-quality failures per model x task. Failures are rescued by retry or fallback or end
  in an error. Latency is log-normal per model with long tails, growing with output tokens,
  summed over attempts; quality is beta-distributed around a model x task mean.
- Who: each account has a population of end users (about one per `USER_CALLS` of its expected
  calls, at most 40,000) ranked by a Zipf law, so a few users make many calls and many make
  one; 5% of calls have no `user_id`. Most accounts (every enterprise one) tag their calls with
  `feature`, `team` and `workflow` (300 values) and maybe `region` and `app_version`, each
  value Zipf-ranked in the account's own order; some calls carry no metadata, some lack a key.
- `input_tokens`/`output_tokens` are those of the last attempt; `cost_usd` is the whole cost:
  answer-quality failed attempts are billed, provider-side failed attempts are not. Costs are
  computed in integer nano-dollars, so `cost_usd` has at most 9 decimals and is exact.

Work is done in fixed blocks of `BLOCK_SIZE` calls, each with its own random stream
(`SeedSequence(seed, spawn_key=(1, block))`). `_block` runs one function per stage, in the
order above, each drawing from that stream and adding numpy columns to `_Calls`; `_records`
turns the columns into dicts. The tables the stages draw from are in `calibration.py`.
"""

from __future__ import annotations

import gc
import hashlib
import io
import itertools
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import orjson

from perf_metrics.calls.schema import FAILURE_MODES, PROVIDER_SIDE_MODES, TASK_TYPES
from perf_metrics.synthetic.calibration import (
    CEILINGS_USD,
    FAILURE_FACTORS,
    FALLBACKS,
    INCIDENT_PROVIDERS,
    META_ACCOUNT_SHARE,
    META_NONE_SHARE,
    META_TAGS,
    META_VALUES,
    MODEL_MIX,
    MODEL_PROFILE,
    NAME_NOUNS,
    NAME_WORDS,
    PRICES,
    PROV_SPLIT_INCIDENT,
    PROV_SPLIT_NORMAL,
    PROVIDER_BASE_FAILURE,
    QUALITY_ADJUSTMENTS,
    RECOVERY_INCIDENT,
    RECOVERY_PROVIDER,
    RECOVERY_QUALITY,
    TASK_FAILURES,
    TASK_PROFILE,
    TASK_QUALITY_OFFSET,
    TASK_TRIGGERS,
    TIER_CEILING_SHARE,
    TIER_TILT,
    TRIGGERS,
    USER_CALLS,
    USER_NONE_SHARE,
    USER_POOL,
    USER_ZIPF,
)

# Answer-quality modes first, then the provider-side ones (indices 5..7).
if FAILURE_MODES[5:] != PROVIDER_SIDE_MODES:
    raise RuntimeError("the generator's mode indices assume provider-side modes come last")

BLOCK_SIZE = 10_000
MAX_OUTPUT_TOKENS = 16_384
MAX_INPUT_TOKENS = 200_000
MAX_LATENCY_MS = 900_000
MINUTE_MS = 60_000
DAY_MS = 86_400_000

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Obj = npt.NDArray[np.object_]


def _nano_per_token(usd_per_mtok: str) -> int:
    nano = Decimal(usd_per_mtok) * 1000  # USD per million tokens -> nano-USD per token
    if nano != nano.to_integral_value():
        raise ValueError(f"price {usd_per_mtok} has more than 3 decimals")
    return int(nano)


MODELS = tuple(m for m, _, _, _ in PRICES)
_M = len(MODELS)
_MODEL_IDX = {m: i for i, m in enumerate(MODELS)}
PROVIDERS = tuple(dict.fromkeys(p for _, p, _, _ in PRICES))
_PROVIDER_OF = np.array([PROVIDERS.index(p) for _, p, _, _ in PRICES])
_IN_NANO = np.array([_nano_per_token(i) for _, _, i, _ in PRICES], dtype=np.int64)
_OUT_NANO = np.array([_nano_per_token(o) for _, _, _, o in PRICES], dtype=np.int64)
_MODEL_OBJ = np.array([*MODELS, None], dtype=object)
_PROVIDER_OBJ = np.array([p for _, p, _, _ in PRICES], dtype=object)
_INITIAL_PROVIDER_OBJ = np.array([*_PROVIDER_OBJ, None], dtype=object)
_TASK_OBJ = np.array(TASK_TYPES, dtype=object)
_MODE_OBJ = np.array([*FAILURE_MODES, None], dtype=object)
_STATUS_OBJ = np.array(["success", "error"], dtype=object)
_ENV_OBJ = np.array(["live", "test"], dtype=object)
_RECOVERY_OBJ = np.array([None, "retry", "fallback", None], dtype=object)

# A model's "strength" for routing: standardised log output price (dearer = stronger).
_log_price = np.log(_OUT_NANO.astype(np.float64))
_STRENGTH = (_log_price - _log_price.mean()) / _log_price.std()

_BASE_LOGIT = np.full((len(TASK_TYPES), _M), -np.inf)
for _t, _task in enumerate(TASK_TYPES):
    for _model, _w in MODEL_MIX[_task].items():
        _BASE_LOGIT[_t, _MODEL_IDX[_model]] = np.log(_w)
# The cheapest model the router uses for each task: where a cost ceiling downgrades to.
_CHEAPEST = np.array(
    [
        min(MODEL_MIX[task], key=lambda m: _IN_NANO[_MODEL_IDX[m]] + _OUT_NANO[_MODEL_IDX[m]])
        for task in TASK_TYPES
    ]
)
_CHEAPEST_IDX = np.array([_MODEL_IDX[m] for m in _CHEAPEST])

_TP = np.array([TASK_PROFILE[t] for t in TASK_TYPES])
_TASK_SHARE = _TP[:, 0] / _TP[:, 0].sum()
_CPLX_A, _CPLX_B = _TP[:, 1], _TP[:, 2]
_IN_MED, _IN_SIG, _OUT_MED, _OUT_SIG, _MSG_P = _TP[:, 3], _TP[:, 4], _TP[:, 5], _TP[:, 6], _TP[:, 7]

_MP = np.array([MODEL_PROFILE[m] for m in MODELS])
_TTFT, _TPOT, _LAT_SIG, _TAIL_P, _VERBOSITY = _MP[:, 0], _MP[:, 1], _MP[:, 2], _MP[:, 3], _MP[:, 4]

_QUALITY_MEAN = _MP[:, 5][None, :] + np.array(TASK_QUALITY_OFFSET)[:, None]
for (_model, _task), _adj in QUALITY_ADJUSTMENTS.items():
    _QUALITY_MEAN[TASK_TYPES.index(_task), _MODEL_IDX[_model]] += _adj

_QUALITY_RATES = (
    np.array([TASK_FAILURES[t] for t in TASK_TYPES])[:, None, :] * _MP[:, 6][None, :, None]
)  # (task, model, mode)
for _model, _mode, _factor in FAILURE_FACTORS:
    _QUALITY_RATES[:, _MODEL_IDX[_model], FAILURE_MODES.index(_mode)] *= _factor

_PROV_BASE = np.array([PROVIDER_BASE_FAILURE[p] for p in PROVIDERS])


def _fallback_table(other_provider_only: bool) -> tuple[I64, F64]:
    width = max(len(c) for c in FALLBACKS.values())
    cand = np.zeros((_M, width), dtype=np.int64)
    cum = np.ones((_M, width))
    for m, model in enumerate(MODELS):
        items = [
            (_MODEL_IDX[c], w)
            for c, w in FALLBACKS[model].items()
            if not other_provider_only or _PROVIDER_OF[_MODEL_IDX[c]] != _PROVIDER_OF[m]
        ]
        if not items or any(c == m for c, _ in items):
            raise ValueError(f"bad fallback candidates for {model}")
        weights = np.array([w for _, w in items])
        cand[m, : len(items)] = [c for c, _ in items]
        cand[m, len(items) :] = items[-1][0]
        cum[m, : len(items)] = np.cumsum(weights / weights.sum())
    return cand, cum


_FB_ANY = _fallback_table(other_provider_only=False)
_FB_OTHER = _fallback_table(other_provider_only=True)


def _trigger_table() -> tuple[Obj, I64, I64]:
    flat: list[str | None] = []
    offset = np.zeros((len(FAILURE_MODES) + 1, len(TASK_TYPES)), dtype=np.int64)
    count = np.ones_like(offset)
    for f, mode in enumerate(FAILURE_MODES):
        for t, task in enumerate(TASK_TYPES):
            tags = TASK_TRIGGERS.get((mode, task), TRIGGERS[mode])
            offset[f, t], count[f, t] = len(flat), len(tags)
            flat.extend(tags)
    offset[len(FAILURE_MODES), :] = len(flat)  # "no failure" row points at None
    flat.append(None)
    return np.array(flat, dtype=object), offset, count


_TRIGGER_OBJ, _TRIGGER_OFFSET, _TRIGGER_COUNT = _trigger_table()

_TAG_KEYS = tuple(META_VALUES)
if set(META_TAGS) != set(_TAG_KEYS) or len(_TAG_KEYS) > 16:  # SPEC §2: at most 16 keys
    raise RuntimeError("META_TAGS must describe each of META_VALUES' keys, at most 16 of them")
_TAG_SIZE = np.array([len(META_VALUES[k]) for k in _TAG_KEYS])
_TAG_ABSENT = np.array([META_TAGS[k][1] for k in _TAG_KEYS])


def _tag_table(keys: list[int]) -> tuple[I64, Obj]:
    """Every combination of these keys' values as a dict, value index `size` meaning absent,
    at index sum(value * stride); with the strides."""
    radix = _TAG_SIZE[keys] + 1
    stride = np.cumprod([1, *radix[:-1]]).astype(np.int64)
    table = np.empty(int(np.prod(radix)), dtype=object)
    for code in range(len(table)):
        digits = [code // int(stride[j]) % int(radix[j]) for j in range(len(keys))]
        table[code] = {
            _TAG_KEYS[k]: META_VALUES[_TAG_KEYS[k]][d]
            for k, d in zip(keys, digits, strict=True)
            if d < _TAG_SIZE[k]
        }
    return stride, table


# A call's tags are two dicts merged: one for its value of the key with the most values, one
# for the combination of the other keys' values. Both tables are small (hundreds of dicts),
# where one of every combination would have 168,560 and building a fresh dict per call made
# the generator about a third slower; a merge costs about 0.1 µs more than a copy.
_TAG_WIDE = int(np.argmax(_TAG_SIZE))
_TAG_NARROW = [k for k in range(len(_TAG_KEYS)) if k != _TAG_WIDE]
_TAG_WIDE_STRIDE, _TAG_WIDE_OBJ = _tag_table([_TAG_WIDE])
_TAG_NARROW_STRIDE, _TAG_NARROW_OBJ = _tag_table(_TAG_NARROW)


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


@dataclass(frozen=True)
class AccountSpec:
    account_id: str
    name: str
    tier: str  # free | pro | enterprise
    weight: float  # share of calls


def plan_accounts(n: int, seed: int) -> list[AccountSpec]:
    """n demo accounts, largest first: Zipf-like weights (s = 1.1), so a few hold most calls.

    The top 3% are enterprise, the next 17% pro, the tail free. Ids are `acct_demo_000`...
    in order of size, whatever the seed; names and the exact weights depend on the seed.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    _check_seed(seed)
    rng = _rng(seed, 0)
    raw = np.arange(1, n + 1, dtype=np.float64) ** -1.1 * np.exp(rng.normal(0.0, 0.15, n))
    weights = np.sort(raw)[::-1] / raw.sum()
    n_enterprise = max(1, round(0.03 * n))
    n_pro = round(0.17 * n)
    adjectives = [w for group in NAME_WORDS for w in group]
    names = [f"{a} {b}" for a in adjectives for b in NAME_NOUNS]
    order = rng.permutation(len(names))
    width = max(3, len(str(n - 1)))
    out = []
    for i in range(n):
        name = names[order[i % len(names)]]
        if i >= len(names):
            name = f"{name} {i // len(names) + 1}"
        tier = "enterprise" if i < n_enterprise else "pro" if i < n_enterprise + n_pro else "free"
        out.append(AccountSpec(f"acct_demo_{i:0{width}d}", name, tier, float(weights[i])))
    return out


# The accounts' timezones (SPEC §9), dealt round robin by index so that every seeded log has
# local days of every kind: whole-hour offsets with and without DST, +05:30, +05:45, Lord Howe's
# 30-minute DST shift, +12:45/+13:45, and the southern hemisphere's DST. The largest account
# (index 0) is in Berlin, so the demo and the benchmarks' largest account show local days.
# A zone is a setting of the account, not part of the log: it changes no generated call (and
# stays out of AccountSpec, whose repr the generator's digest test holds).
ACCOUNT_ZONES = (
    "Europe/Berlin",
    "UTC",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Sao_Paulo",
)


# The metadata keys every seeded account tracks (SPEC §10): its breakdowns by them work at once.
TRACKED_KEYS = ("feature", "team")


def account_zone(index: int) -> str:
    """The timezone of the planned account at `index` (plan_accounts' order)."""
    if index < 0:
        raise ValueError("index must not be negative")
    return ACCOUNT_ZONES[index % len(ACCOUNT_ZONES)]


def _check_seed(seed: int) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**128:
        raise ValueError("seed must be an integer in [0, 2**128)")


@dataclass(frozen=True)
class _Incident:
    provider: int
    start_ms: int
    end_ms: int
    failure_rate: float
    latency_factor: float


class _Plan:
    """Everything a block needs that is decided once per generation: accounts, time, incidents."""

    def __init__(
        self,
        accounts: list[AccountSpec],
        days: int,
        calls: int,
        seed: int,
        end: datetime,
        test_share: float,
    ) -> None:
        self.seed, self.calls, self.test_share = seed, calls, test_share
        self.call_prefix = f"{seed:x}-"
        end_us = (end.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
            microseconds=1
        )
        # Whole milliseconds in [start, end) with start >= end - days and every one < end.
        self.end_ms = -(-end_us // 1000)
        self.start_ms = self.end_ms - days * DAY_MS
        rng = _rng(seed, 2)
        self.minute_count = rng.multinomial(calls, self._minute_intensity(days, rng))
        self.minute_cum = np.cumsum(self.minute_count)
        self.incidents = self._incidents(rng)
        self._accounts(accounts)

    def _minute_intensity(self, days: int, rng: np.random.Generator) -> F64:
        minutes = days * 1440
        t = self.start_ms + (np.arange(minutes) + 0.5) * MINUTE_MS
        hour = (t % DAY_MS) / 3_600_000
        day = np.floor_divide(t, DAY_MS).astype(np.int64)
        weekend = (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday; Monday = 0

        def bump(center: float, width: float) -> F64:
            d = np.abs(hour - center)
            d = np.minimum(d, 24 - d)
            return np.asarray(np.exp(-0.5 * (d / width) ** 2))

        # Europe's and America's working days, in UTC.
        profile = 0.25 + 0.55 * bump(10.5, 2.6) + 0.8 * bump(16.5, 3.0)
        elapsed_days = (t - self.start_ms) / DAY_MS
        day_noise = np.exp(rng.normal(0.0, 0.06, days + 2))[day - day[0]]
        intensity = profile * np.where(weekend, 0.6, 1.0) * np.exp(0.004 * elapsed_days)
        intensity *= day_noise
        return np.asarray(intensity / intensity.sum())

    def _incidents(self, rng: np.random.Generator) -> list[_Incident]:
        providers = list(INCIDENT_PROVIDERS)
        p = np.array(list(INCIDENT_PROVIDERS.values()))
        out = []
        for _ in range(int(rng.integers(2, 5))):
            provider = PROVIDERS.index(providers[rng.choice(len(providers), p=p / p.sum())])
            length = int(rng.integers(10, 41)) * MINUTE_MS
            start = int(rng.integers(self.start_ms, self.end_ms - length))
            out.append(
                _Incident(
                    provider,
                    start,
                    start + length,
                    float(rng.uniform(0.3, 0.7)),
                    float(rng.uniform(1.5, 3.0)),
                )
            )
        return out

    def _accounts(self, accounts: list[AccountSpec]) -> None:
        a = len(accounts)
        weights = np.array([max(0.0, float(x.weight)) for x in accounts])
        self.account_cum = np.cumsum(weights / weights.sum())
        self.account_obj = np.array([x.account_id for x in accounts], dtype=object)
        self.task_cum = np.zeros((a, len(TASK_TYPES)))
        self.model_logit = np.repeat(_BASE_LOGIT[None], a, axis=0)
        self.tilt = np.zeros(a)
        self.ceiling_nano = np.full(a, -1, dtype=np.int64)
        self.ceiling_obj = np.full(a, None, dtype=object)
        self.key_count = np.ones((a, 2), dtype=np.int64)
        self.key_obj = np.full((a, 2, 4), None, dtype=object)
        self.user_pool = np.zeros(a, dtype=np.int64)
        self.user_zipf = np.ones(a)
        self.user_mult = np.ones(a, dtype=np.int64)
        self.user_shift = np.zeros(a, dtype=np.int64)
        self.tags = np.zeros(a, dtype=bool)
        self.tag_used = np.zeros((a, len(_TAG_KEYS)), dtype=bool)
        # Per key, each account's order of the key's values (rank -> value index).
        self.tag_order = [np.zeros((a, size), dtype=np.int64) for size in _TAG_SIZE]
        for i, acct in enumerate(accounts):
            # Per-account traits depend on the account id and seed, not on the other accounts.
            digest = hashlib.blake2b(acct.account_id.encode(), digest_size=8).digest()
            rng = _rng(self.seed, 3, int.from_bytes(digest, "big"))
            self.task_cum[i] = np.cumsum(rng.dirichlet(_TASK_SHARE * 12))
            self.tilt[i] = TIER_TILT.get(acct.tier, 0.0) + rng.normal(0.0, 0.3)
            if rng.random() < 0.25:
                self.model_logit[i, :, rng.integers(_M)] += 1.2
            if rng.random() < TIER_CEILING_SHARE.get(acct.tier, 0.35):
                usd = CEILINGS_USD[rng.integers(len(CEILINGS_USD))]
                self.ceiling_nano[i] = round(usd * 1e9)
                self.ceiling_obj[i] = usd
            self.key_count[i] = (rng.integers(1, 5), rng.integers(1, 3))
            for env, env_name in enumerate(("live", "test")):
                for k in range(4):
                    raw = f"{acct.account_id}:{env_name}:{k}".encode()
                    self.key_obj[i, env, k] = (
                        "key_" + hashlib.blake2b(raw, digest_size=8).hexdigest()
                    )
            expected_calls = self.calls * weights[i] / weights.sum()
            pool = int(np.clip(round(expected_calls / USER_CALLS), *USER_POOL))
            self.user_pool[i] = pool
            self.user_zipf[i] = rng.uniform(*USER_ZIPF)
            # Ranks become ids through rank * mult + shift (mod pool), a permutation, so that
            # the heaviest user is not user_00000 in every account.
            mult = int(rng.integers(1, max(2, pool)))
            while math.gcd(mult, pool) != 1:
                mult += 1
            self.user_mult[i], self.user_shift[i] = mult, rng.integers(pool)
            if rng.random() < META_ACCOUNT_SHARE or acct.tier == "enterprise":
                self.tags[i] = True
                for k, key in enumerate(_TAG_KEYS):
                    self.tag_used[i, k] = rng.random() < META_TAGS[key][0]
                    self.tag_order[k][i] = rng.permutation(_TAG_SIZE[k])
        self.user_obj = np.array(
            [None, *(f"user_{k:05d}" for k in range(int(self.user_pool.max())))], dtype=object
        )


def generate_calls(
    accounts: list[AccountSpec],
    *,
    days: int,
    calls: int,
    seed: int,
    end: datetime,
    chunk_size: int = 50_000,
    test_share: float = 0.05,
) -> Iterator[list[dict[str, Any]]]:
    """Chunks of exactly `calls` synthetic call records over the `days` days before `end`.

    Records are JSON-ready dicts with the SPEC §2 keys in order, in time order, with
    `created_at` like "2026-11-20T14:03:07.123Z" and strictly before `end`. Each chunk has
    `chunk_size` records but the last. Deterministic: the same arguments give the same records
    (and `chunk_size` changes only how they are grouped); the iterator can be made again.
    """
    if not accounts and calls:
        raise ValueError("accounts must not be empty")
    if days < 1 or calls < 0 or chunk_size < 1:
        raise ValueError("days and chunk_size must be >= 1, calls >= 0")
    if not 0.0 <= test_share <= 1.0:
        raise ValueError("test_share must be in [0, 1]")
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    _check_seed(seed)
    if calls and sum(max(0.0, a.weight) for a in accounts) <= 0:
        raise ValueError("account weights must not all be zero")
    if calls == 0:
        return iter(())
    plan = _Plan(accounts, days, calls, seed, end, test_share)
    n_blocks = -(-calls // BLOCK_SIZE)
    records = itertools.chain.from_iterable(_block(plan, b) for b in range(n_blocks))
    return iter(lambda: list(itertools.islice(records, chunk_size)), [])


def _pick(rng: np.random.Generator, cum: F64) -> I64:
    """Row-wise categorical draw from cumulative probabilities (n, k)."""
    u: F64 = rng.random(int(cum.shape[0]))
    picked: I64 = np.minimum((u[:, None] >= cum).sum(axis=1), cum.shape[1] - 1).astype(np.int64)
    return picked


def _zipf_rank(u: F64, size: I64 | int, s: F64 | float) -> I64:
    """Ranks in [0, size) from uniforms, P(rank k) about proportional to (k + 1) ** -s: the
    inverse CDF of a power law on [1, size + 1), floored."""
    # s = 1 is the limit a -> 0 (x = (size + 1) ** u); a tiny a stands in for it.
    a = np.asarray(1.0 - s, dtype=np.float64)
    a = np.where(np.abs(a) < 1e-6, 1e-6, a)
    x = np.exp(np.log1p(u * np.expm1(a * np.log(size + 1.0))) / a)
    rank: I64 = np.clip(np.floor(x).astype(np.int64) - 1, 0, np.asarray(size) - 1)
    return rank


def _attempt_latency(rng: np.random.Generator, model: I64, out: I64) -> F64:
    n = model.shape[0]
    lat = _TTFT[model] * np.exp(_LAT_SIG[model] * rng.standard_normal(n))
    lat += out * _TPOT[model] * np.exp(0.25 * rng.standard_normal(n))
    tail = rng.random(n) < _TAIL_P[model]
    lat[tail] *= 1.5 + 3.0 * rng.pareto(1.5, int(tail.sum()))
    return np.asarray(lat)


class _Calls:
    """One block's calls as numpy columns, filled in by the stages of `_block` in order."""

    lo: int
    hi: int
    n: int
    # when, who, what
    t_ms: I64
    acct: I64
    test: npt.NDArray[np.bool_]
    task: I64
    cplx: F64
    msgs: I64
    # first choice, tokens, cost ceiling
    first: I64
    inp: I64
    out: I64
    ceiling_hit: npt.NDArray[np.bool_]
    # failures and recovery
    mode: I64
    incident: npt.NDArray[np.bool_]
    lat_factor: F64
    provider_side: npt.NDArray[np.bool_]
    quality_side: npt.NDArray[np.bool_]
    recovery: I64
    error: npt.NDArray[np.bool_]
    retries: I64
    fallback: npt.NDArray[np.bool_]
    final: I64
    out_final: I64
    # outcome
    cost_nano: I64
    latency: I64
    quality: Obj
    complexity: Obj
    messages: Obj
    trigger: Obj
    initial_idx: I64
    env: I64
    api_key: Obj
    user: Obj
    meta: Obj  # the tags but the widest key's (None: no metadata)
    meta_wide: Obj  # the widest key's tag ({} when absent)


def _block(plan: _Plan, b: int) -> list[dict[str, Any]]:
    """Block b's records: one random stream, drawn from by each stage in this order (the order
    is part of the output: the same seed gives the same log)."""
    c = _Calls()
    c.lo = b * BLOCK_SIZE
    c.hi = min(plan.calls, c.lo + BLOCK_SIZE)
    c.n = c.hi - c.lo
    rng = _rng(plan.seed, 1, b)
    for stage in (
        _when_who_what,
        _first_choice,
        _failures,
        _recovery,
        _cost,
        _latency,
        _quality_and_labels,
        _keys_users_tags,
    ):
        stage(plan, rng, c)
    return _records(plan, c)


def _when_who_what(plan: _Plan, rng: np.random.Generator, c: _Calls) -> None:
    # The k-th of a minute's calls falls in the k-th of its equal slots of it, so the log is in
    # time order across blocks too.
    n = c.n
    index = np.arange(c.lo, c.hi)
    minute = np.searchsorted(plan.minute_cum, index, side="right")
    in_minute = plan.minute_count[minute]
    rank = index - (plan.minute_cum[minute] - in_minute)
    offset = np.floor((rank + rng.random(n)) * MINUTE_MS / in_minute).astype(np.int64)
    c.t_ms = plan.start_ms + minute * MINUTE_MS + np.minimum(offset, MINUTE_MS - 1)
    c.acct = np.minimum(
        np.searchsorted(plan.account_cum, rng.random(n), side="right"), len(plan.account_cum) - 1
    )
    c.test = rng.random(n) < plan.test_share
    c.task = _pick(rng, plan.task_cum[c.acct])
    c.cplx = rng.beta(_CPLX_A[c.task], _CPLX_B[c.task])
    c.msgs = np.minimum(rng.geometric(_MSG_P[c.task]), 200)


def _first_choice(plan: _Plan, rng: np.random.Generator, c: _Calls) -> None:
    """The router's first choice, then tokens, then the cost ceiling."""
    n, task, cplx, acct = c.n, c.task, c.cplx, c.acct
    logits = plan.model_logit[acct, task] + rng.gumbel(size=(n, _M))
    logits += (plan.tilt[acct] + 0.8 * (cplx - 0.5))[:, None] * _STRENGTH[None, :]
    first = np.argmax(logits, axis=1)
    z_in, z_out = rng.standard_normal((2, n))
    inp = _IN_MED[task] * np.exp(_IN_SIG[task] * z_in + 0.6 * (cplx - 0.5))
    inp += (c.msgs - 1) * 150 * np.exp(0.5 * rng.standard_normal(n))
    c.inp = np.clip(np.rint(inp), 1, MAX_INPUT_TOKENS).astype(np.int64)
    out_f = _OUT_MED[task] * np.exp(
        _OUT_SIG[task] * (0.3 * z_in + 0.95 * z_out) + 0.5 * (cplx - 0.5)
    )
    c.out = np.clip(np.rint(out_f * _VERBOSITY[first]), 1, MAX_OUTPUT_TOKENS).astype(np.int64)
    ceiling = plan.ceiling_nano[acct]
    c.ceiling_hit = (ceiling >= 0) & (c.inp * _IN_NANO[first] + c.out * _OUT_NANO[first] > ceiling)
    c.first = np.where(c.ceiling_hit & (rng.random(n) < 0.75), _CHEAPEST_IDX[task], first)


def _failures(plan: _Plan, rng: np.random.Generator, c: _Calls) -> None:
    """How the first attempt failed, if it did: provider-side (baseline or incident), then
    answer quality."""
    n = c.n
    prov = _PROVIDER_OF[c.first]
    p_prov = _PROV_BASE[prov]
    c.lat_factor = np.ones(n)
    c.incident = np.zeros(n, dtype=bool)
    for inc in plan.incidents:
        hit = (prov == inc.provider) & (c.t_ms >= inc.start_ms) & (c.t_ms < inc.end_ms)
        c.incident |= hit
        p_prov = np.where(hit, inc.failure_rate, p_prov)
        c.lat_factor = np.where(hit, inc.latency_factor, c.lat_factor)
    split = np.where(c.incident[:, None], PROV_SPLIT_INCIDENT, PROV_SPLIT_NORMAL)
    rates = np.concatenate(
        [_QUALITY_RATES[c.task, c.first] * (0.4 + 1.2 * c.cplx)[:, None], p_prov[:, None] * split],
        axis=1,
    )
    # One uniform draw against the cumulative rates; past the last one (index 8) = no failure.
    c.mode = (rng.random(n)[:, None] >= np.cumsum(rates, axis=1)).sum(axis=1)
    failed = c.mode < len(FAILURE_MODES)
    c.provider_side = failed & (c.mode >= 5)
    c.quality_side = failed & ~c.provider_side


def _recovery(plan: _Plan, rng: np.random.Generator, c: _Calls) -> None:
    """Recovery: 1 retry, 2 fallback, 3 error (0 = nothing failed); retries, the final model."""
    n, quality_side, provider_side, incident = c.n, c.quality_side, c.provider_side, c.incident
    retry_below = np.where(quality_side, RECOVERY_QUALITY[0], RECOVERY_PROVIDER[0])
    fallback_below = np.where(quality_side, RECOVERY_QUALITY[1], RECOVERY_PROVIDER[1])
    retry_below = np.where(incident & provider_side, RECOVERY_INCIDENT[0], retry_below)
    fallback_below = np.where(incident & provider_side, RECOVERY_INCIDENT[1], fallback_below)
    u = rng.random(n)
    recovery = np.where(u < retry_below, 1, np.where(u < fallback_below, 2, 3))
    c.recovery = np.where(c.mode < len(FAILURE_MODES), recovery, 0)
    c.error = error = c.recovery == 3
    u = rng.random(n)
    c.retries = np.select(
        [c.recovery == 1, c.recovery == 2, error & quality_side, error],
        [1 + (u > 0.75) + (u > 0.95), (u < 0.2) & quality_side, np.floor(u * 4), np.floor(u * 3)],
        0,
    ).astype(np.int64)
    c.fallback = fallback = (c.recovery == 2) | (error & (rng.random(n) < 0.25))
    first = c.first
    fb_other = _FB_OTHER[0][first, _pick(rng, _FB_OTHER[1][first])]
    fb_any = _FB_ANY[0][first, _pick(rng, _FB_ANY[1][first])]
    c.final = final = np.where(fallback, np.where(provider_side, fb_other, fb_any), first)
    out_final = np.where(
        fallback,
        np.maximum(1, np.rint(c.out * _VERBOSITY[final] / _VERBOSITY[first])).astype(np.int64),
        c.out,
    )
    c.out_final = np.where(error & provider_side, 0, out_final)


def _cost(plan: _Plan, rng: np.random.Generator, c: _Calls) -> None:
    """Answer-quality failed attempts are billed, provider-side ones are not (no draws)."""
    first_nano = c.inp * _IN_NANO[c.first] + c.out * _OUT_NANO[c.first]
    final_nano = c.inp * _IN_NANO[c.final] + c.out_final * _OUT_NANO[c.final]
    cost_nano = np.where(
        c.quality_side,
        (1 + c.retries) * first_nano + np.where(c.fallback, final_nano, 0),
        np.where(c.fallback, final_nano, first_nano),
    )
    c.cost_nano = np.where(c.error & c.provider_side, 0, cost_nano)


def _latency(plan: _Plan, rng: np.random.Generator, c: _Calls) -> None:
    """Latency, summed over attempts."""
    n, mode, retries, recovery = c.n, c.mode, c.retries, c.recovery
    quality_side, provider_side = c.quality_side, c.provider_side
    lat_first = _attempt_latency(rng, c.first, c.out) * c.lat_factor
    lat_final = _attempt_latency(rng, c.final, c.out_final)
    fail_lat = np.select(
        [mode == 5, mode == 6, mode == 7],
        [
            800 * np.exp(0.7 * rng.standard_normal(n)) * c.lat_factor,
            30_000 + rng.uniform(0, 2_000, n),
            150 * np.exp(0.5 * rng.standard_normal(n)) + 1_000,  # with the client's backoff
        ],
        0.0,
    )
    latency = np.select(
        [
            quality_side & (recovery == 1),
            quality_side,
            provider_side & (recovery == 1),
            provider_side & (recovery == 2),
            provider_side,
        ],
        [
            lat_first * (1 + retries * rng.uniform(0.8, 1.2, n)),
            lat_first * (1 + retries) + np.where(c.fallback, lat_final, 0.0),
            fail_lat * retries + lat_first,
            fail_lat * (1 + retries) + lat_final,
            fail_lat * (1 + retries) + np.where(c.fallback, fail_lat, 0.0),
        ],
        lat_first,
    )
    c.latency = np.clip(np.rint(latency), 1, MAX_LATENCY_MS).astype(np.int64)


def _quality_and_labels(plan: _Plan, rng: np.random.Generator, c: _Calls) -> None:
    """The returned answer's quality; which fields are null; failure triggers; initial model."""
    n, task, error = c.n, c.task, c.error
    q_mean = _QUALITY_MEAN[task, c.final] - 0.08 * (c.cplx - 0.5) - 0.04 * c.quality_side
    q_mean = np.where(error, 0.3, np.clip(q_mean, 0.05, 0.97))
    c.quality = np.round(rng.beta(q_mean * 30, (1 - q_mean) * 30), 3).astype(object)
    c.quality[rng.random(n) < np.where(error, 0.85, 0.10)] = None

    c.complexity = np.round(c.cplx, 3).astype(object)
    c.complexity[rng.random(n) < 0.07] = None
    c.messages = c.msgs.astype(object)
    c.messages[rng.random(n) < 0.12] = None

    u = rng.random(n)
    c.trigger = _TRIGGER_OBJ[
        np.where(
            u < 0.12,
            _TRIGGER_OFFSET[-1, 0],
            _TRIGGER_OFFSET[c.mode, task]
            + np.minimum(
                np.floor(rng.random(n) * _TRIGGER_COUNT[c.mode, task]),
                _TRIGGER_COUNT[c.mode, task] - 1,
            ).astype(np.int64),
        )
    ]
    same_as_final = ~c.fallback & (rng.random(n) < 0.02)
    c.initial_idx = np.where(c.fallback | same_as_final, c.first, _M)


def _keys_users_tags(plan: _Plan, rng: np.random.Generator, c: _Calls) -> None:
    """The customer key that made the call, its end user (Zipf-ranked in the account's
    population), its metadata tags (each key's value Zipf-ranked in the account's order)."""
    n, acct = c.n, c.acct
    c.env = env = c.test.astype(np.int64)
    key_k = np.minimum(np.floor(rng.random(n) ** 1.5 * plan.key_count[acct, env]), 3).astype(
        np.int64
    )
    c.api_key = plan.key_obj[acct, env, key_k]
    c.api_key[rng.random(n) < 0.03] = None
    pool = plan.user_pool[acct]
    has_user = rng.random(n) >= USER_NONE_SHARE
    rank = _zipf_rank(rng.random(n), pool, plan.user_zipf[acct])
    user_idx = (rank * plan.user_mult[acct] + plan.user_shift[acct]) % pool
    c.user = plan.user_obj[np.where(has_user, 1 + user_idx, 0)]

    tagged = plan.tags[acct] & (rng.random(n) >= META_NONE_SHARE)
    present = plan.tag_used[acct] & (rng.random((n, len(_TAG_KEYS))) >= _TAG_ABSENT)
    present &= tagged[:, None]
    u = rng.random((n, len(_TAG_KEYS)))
    digit = np.empty((n, len(_TAG_KEYS)), dtype=np.int64)
    for k, key in enumerate(_TAG_KEYS):
        size = int(_TAG_SIZE[k])
        value = plan.tag_order[k][acct, _zipf_rank(u[:, k], size, META_TAGS[key][2])]
        digit[:, k] = np.where(present[:, k], value, size)
    c.meta = _TAG_NARROW_OBJ[digit[:, _TAG_NARROW] @ _TAG_NARROW_STRIDE]
    c.meta[~present.any(axis=1)] = None  # no metadata (not an empty one)
    c.meta_wide = _TAG_WIDE_OBJ[digit[:, _TAG_WIDE]]


def _records(plan: _Plan, c: _Calls) -> list[dict[str, Any]]:
    """The columns as JSON-ready dicts, SPEC §2's keys in order."""
    lo, hi, acct, env, task, final = c.lo, c.hi, c.acct, c.env, c.task, c.final
    api_key, complexity, initial_idx, inp, out_final = (
        c.api_key,
        c.complexity,
        c.initial_idx,
        c.inp,
        c.out_final,
    )
    cost_nano, latency, error, mode, trigger = c.cost_nano, c.latency, c.error, c.mode, c.trigger
    recovery, retries, fallback, quality = c.recovery, c.retries, c.fallback, c.quality
    messages, ceiling_hit, user, meta, meta_wide = (
        c.messages,
        c.ceiling_hit,
        c.user,
        c.meta,
        c.meta_wide,
    )
    created = np.datetime_as_string(c.t_ms.astype("datetime64[ms]"), unit="ms", timezone="UTC")
    prefix = plan.call_prefix
    # Building many small dicts makes the cyclic GC run over and over for nothing (they hold
    # no cycles); pausing it makes this about a third faster.
    with _gc_paused():
        records = [
            {
                "call_id": f"{prefix}{i:09d}",
                "account_id": a,
                "environment": e,
                "api_key_id": k,
                "created_at": c,
                "task_type": t,
                "complexity_score": cx,
                "model": m,
                "provider": p,
                "initial_model": im,
                "initial_provider": ip,
                "input_tokens": ti,
                "output_tokens": to,
                "cost_usd": cost,
                "latency_ms": lat,
                "status": st,
                "failure_mode": fm,
                "failure_trigger": ft,
                "recovery": rc,
                "retry_count": rt,
                "fallback_used": fb,
                "quality_score": q,
                "message_count": mc,
                "max_cost_per_call": mx,
                "cost_ceiling_hit": ch,
                "user_id": us,
                "metadata": None if md is None else {**md, **mw},
            }
            for (
                i,
                a,
                e,
                k,
                c,
                t,
                cx,
                m,
                p,
                im,
                ip,
                ti,
                to,
                cost,
                lat,
                st,
                fm,
                ft,
                rc,
                rt,
                fb,
                q,
                mc,
                mx,
                ch,
                us,
                md,
                mw,
            ) in zip(
                range(lo, hi),
                plan.account_obj[acct].tolist(),
                _ENV_OBJ[env].tolist(),
                api_key.tolist(),
                created.tolist(),
                _TASK_OBJ[task].tolist(),
                complexity.tolist(),
                _MODEL_OBJ[final].tolist(),
                _PROVIDER_OBJ[final].tolist(),
                _MODEL_OBJ[initial_idx].tolist(),
                _INITIAL_PROVIDER_OBJ[initial_idx].tolist(),
                inp.tolist(),
                out_final.tolist(),
                (cost_nano / 1e9).tolist(),
                latency.tolist(),
                _STATUS_OBJ[error.astype(np.int64)].tolist(),
                _MODE_OBJ[mode].tolist(),
                trigger.tolist(),
                _RECOVERY_OBJ[recovery].tolist(),
                retries.tolist(),
                fallback.tolist(),
                quality.tolist(),
                messages.tolist(),
                plan.ceiling_obj[acct].tolist(),
                ceiling_hit.tolist(),
                user.tolist(),
                meta.tolist(),
                meta_wide.tolist(),
                strict=True,
            )
        ]
    return records


def write_jsonl(chunks: Iterable[list[dict[str, Any]]], fp: IO[Any]) -> int:
    """Write one JSON line per record to a binary or text file; returns the record count."""
    text = isinstance(fp, io.TextIOBase)
    count = 0
    for chunk in chunks:
        # Line by line: each line's buffer is freed and reused at once, where joining a chunk
        # first costs fresh memory (page faults) for every line and is several times slower.
        lines = (orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in chunk)
        if text:
            fp.writelines(line.decode() for line in lines)
        else:
            fp.writelines(lines)
        count += len(chunk)
    return count
