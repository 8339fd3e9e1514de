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
- `input_tokens`/`output_tokens` are those of the last attempt; `cost_usd` is the whole cost:
  answer-quality failed attempts are billed, provider-side failed attempts are not. Costs are
  computed in integer nano-dollars, so `cost_usd` has at most 9 decimals and is exact.

Work is done in fixed blocks of `BLOCK_SIZE` calls, each with its own random stream
(`SeedSequence(seed, spawn_key=(1, block))`), with numpy column arrays turned into dicts at
the end of each block.
"""

from __future__ import annotations

import gc
import hashlib
import io
import itertools
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

# Kept equal to the PRICES of the foundation migration (a test compares them).
PRICES = [
    ("gpt-4o", "openai", "2.50", "10.00"),
    ("gpt-4o-mini", "openai", "0.15", "0.60"),
    ("gpt-4.1", "openai", "2.00", "8.00"),
    ("gpt-4.1-mini", "openai", "0.40", "1.60"),
    ("o4-mini", "openai", "1.10", "4.40"),
    ("claude-sonnet-4-5", "anthropic", "3.00", "15.00"),
    ("claude-haiku-4-5", "anthropic", "1.00", "5.00"),
    ("claude-opus-4-1", "anthropic", "15.00", "75.00"),
    ("gemini-2.5-pro", "google", "1.25", "10.00"),
    ("gemini-2.5-flash", "google", "0.30", "2.50"),
    ("mistral-large", "mistral", "2.00", "6.00"),
]

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

# The router's first-choice mix per task (weights; absent = never chosen for that task).
_MODEL_MIX: dict[str, dict[str, float]] = {
    "extraction": {
        "gpt-4o-mini": 0.34,
        "gemini-2.5-flash": 0.25,
        "claude-haiku-4-5": 0.22,
        "gpt-4.1-mini": 0.12,
        "gpt-4o": 0.05,
        "mistral-large": 0.02,
    },
    "classification": {
        "gpt-4o-mini": 0.38,
        "gemini-2.5-flash": 0.27,
        "claude-haiku-4-5": 0.18,
        "gpt-4.1-mini": 0.12,
        "mistral-large": 0.05,
    },
    "summarization": {
        "claude-haiku-4-5": 0.22,
        "gpt-4o-mini": 0.22,
        "gemini-2.5-flash": 0.20,
        "gpt-4.1-mini": 0.10,
        "claude-sonnet-4-5": 0.05,
        "gpt-4o": 0.05,
        "gemini-2.5-pro": 0.04,
        "mistral-large": 0.04,
    },
    "reasoning": {
        "o4-mini": 0.32,
        "gemini-2.5-pro": 0.22,
        "claude-sonnet-4-5": 0.16,
        "gpt-4.1-mini": 0.12,
        "gemini-2.5-flash": 0.08,
        "gpt-4o": 0.06,
        "gpt-4.1": 0.02,
        "claude-opus-4-1": 0.01,
    },
    "code": {
        "gpt-4.1-mini": 0.24,
        "claude-sonnet-4-5": 0.16,
        "gpt-4.1": 0.16,
        "o4-mini": 0.14,
        "gemini-2.5-pro": 0.10,
        "claude-haiku-4-5": 0.10,
        "gpt-4o": 0.04,
        "claude-opus-4-1": 0.01,
    },
    "writing": {
        "claude-haiku-4-5": 0.22,
        "gpt-4o-mini": 0.18,
        "gemini-2.5-flash": 0.18,
        "claude-sonnet-4-5": 0.10,
        "gpt-4.1-mini": 0.10,
        "gpt-4o": 0.08,
        "gemini-2.5-pro": 0.06,
        "mistral-large": 0.05,
        "claude-opus-4-1": 0.01,
    },
}
_BASE_LOGIT = np.full((len(TASK_TYPES), _M), -np.inf)
for _t, _task in enumerate(TASK_TYPES):
    for _model, _w in _MODEL_MIX[_task].items():
        _BASE_LOGIT[_t, _MODEL_IDX[_model]] = np.log(_w)
# The cheapest model the router uses for each task: where a cost ceiling downgrades to.
_CHEAPEST = np.array(
    [
        min(_MODEL_MIX[task], key=lambda m: _IN_NANO[_MODEL_IDX[m]] + _OUT_NANO[_MODEL_IDX[m]])
        for task in TASK_TYPES
    ]
)
_CHEAPEST_IDX = np.array([_MODEL_IDX[m] for m in _CHEAPEST])

# Per task: task share, complexity beta(a, b), input tokens (median, sigma), output tokens
# (median, sigma), geometric p of the message count.
_TASK_PROFILE = {
    "extraction": (0.28, 2.0, 4.0, 1200, 0.8, 180, 0.7, 0.75),
    "classification": (0.18, 1.5, 5.0, 400, 0.7, 10, 0.6, 0.8),
    "summarization": (0.17, 2.5, 3.5, 3500, 0.9, 260, 0.6, 0.6),
    "reasoning": (0.12, 4.0, 2.5, 1500, 0.9, 450, 0.8, 0.45),
    "code": (0.13, 3.5, 2.5, 2500, 1.0, 500, 0.9, 0.3),
    "writing": (0.12, 2.5, 3.0, 800, 0.8, 550, 0.7, 0.35),
}
_TP = np.array([_TASK_PROFILE[t] for t in TASK_TYPES])
_TASK_SHARE = _TP[:, 0] / _TP[:, 0].sum()
_CPLX_A, _CPLX_B = _TP[:, 1], _TP[:, 2]
_IN_MED, _IN_SIG, _OUT_MED, _OUT_SIG, _MSG_P = _TP[:, 3], _TP[:, 4], _TP[:, 5], _TP[:, 6], _TP[:, 7]

# Per model: time to first token (median ms), ms per output token, latency sigma, share of
# calls in the long tail, output verbosity, base quality, answer-failure multiplier.
_MODEL_PROFILE = {
    "gpt-4o": (450, 11.0, 0.45, 0.015, 1.0, 0.86, 0.9),
    "gpt-4o-mini": (320, 9.0, 0.40, 0.010, 0.95, 0.79, 1.3),
    "gpt-4.1": (500, 12.0, 0.45, 0.015, 1.05, 0.87, 0.85),
    "gpt-4.1-mini": (340, 7.0, 0.40, 0.010, 0.95, 0.81, 1.2),
    "o4-mini": (2200, 8.0, 0.60, 0.030, 1.6, 0.85, 0.9),
    "claude-sonnet-4-5": (750, 14.0, 0.50, 0.020, 1.1, 0.90, 0.75),
    "claude-haiku-4-5": (380, 7.0, 0.40, 0.010, 1.0, 0.82, 1.2),
    "claude-opus-4-1": (1400, 28.0, 0.55, 0.040, 1.15, 0.92, 0.6),
    "gemini-2.5-pro": (1800, 9.0, 0.55, 0.030, 1.3, 0.88, 0.85),
    "gemini-2.5-flash": (400, 5.0, 0.40, 0.012, 1.0, 0.80, 1.3),
    "mistral-large": (550, 13.0, 0.45, 0.020, 1.0, 0.80, 1.4),
}
_MP = np.array([_MODEL_PROFILE[m] for m in MODELS])
_TTFT, _TPOT, _LAT_SIG, _TAIL_P, _VERBOSITY = _MP[:, 0], _MP[:, 1], _MP[:, 2], _MP[:, 3], _MP[:, 4]

_QUALITY_MEAN = _MP[:, 5][None, :] + np.array([0.03, 0.05, 0.01, -0.06, -0.04, 0.0])[:, None]
for (_model, _task), _adj in {
    ("o4-mini", "reasoning"): 0.06,
    ("o4-mini", "writing"): -0.04,
    ("gemini-2.5-pro", "reasoning"): 0.02,
    ("claude-sonnet-4-5", "code"): 0.04,
    ("claude-opus-4-1", "code"): 0.03,
    ("gpt-4.1", "code"): 0.03,
    ("gemini-2.5-flash", "summarization"): 0.02,
    ("claude-haiku-4-5", "writing"): 0.01,
}.items():
    _QUALITY_MEAN[TASK_TYPES.index(_task), _MODEL_IDX[_model]] += _adj

# Answer-quality failure rates per task, in FAILURE_MODES[:5] order.
_TASK_FAILURES = {
    "extraction": (0.035, 0.001, 0.012, 0.004, 0.0),
    "classification": (0.015, 0.001, 0.008, 0.0, 0.003),
    "summarization": (0.003, 0.003, 0.018, 0.010, 0.0),
    "reasoning": (0.004, 0.002, 0.012, 0.006, 0.045),
    "code": (0.010, 0.002, 0.008, 0.018, 0.022),
    "writing": (0.002, 0.018, 0.005, 0.008, 0.0),
}
_QUALITY_RATES = (
    np.array([_TASK_FAILURES[t] for t in TASK_TYPES])[:, None, :] * _MP[:, 6][None, :, None]
)  # (task, model, mode)
for _model, _mode, _factor in (
    ("o4-mini", "reasoning_error", 0.5),
    ("claude-sonnet-4-5", "refusal", 1.6),
    ("claude-haiku-4-5", "refusal", 1.6),
    ("claude-opus-4-1", "refusal", 1.6),
    ("gemini-2.5-flash", "hallucination", 1.3),
    ("mistral-large", "format_violation", 1.5),
):
    _QUALITY_RATES[:, _MODEL_IDX[_model], FAILURE_MODES.index(_mode)] *= _factor

_PROVIDER_BASE_FAILURE = {"openai": 0.006, "anthropic": 0.009, "google": 0.007, "mistral": 0.01}
_PROV_BASE = np.array([_PROVIDER_BASE_FAILURE[p] for p in PROVIDERS])
# Split of provider-side failures into provider_error / timeout / rate_limited.
_PROV_SPLIT_NORMAL = np.array([0.5, 0.25, 0.25])
_PROV_SPLIT_INCIDENT = np.array([0.55, 0.35, 0.10])
# Recovery thresholds (retry below the first, fallback below the second, else error).
_RECOVERY_QUALITY = (0.62, 0.85)
_RECOVERY_PROVIDER = (0.45, 0.90)
_RECOVERY_INCIDENT = (0.07, 0.88)
# Providers that have incidents, and how likely each is to be the one.
_INCIDENT_PROVIDERS = {"openai": 0.4, "anthropic": 0.35, "google": 0.25}

# Fallback candidates per model with weights; provider-side failures use only the candidates
# of another provider.
_FALLBACKS = {
    "gpt-4o": {"claude-sonnet-4-5": 0.45, "gemini-2.5-pro": 0.3, "gpt-4.1": 0.25},
    "gpt-4o-mini": {"gemini-2.5-flash": 0.4, "claude-haiku-4-5": 0.35, "gpt-4.1-mini": 0.25},
    "gpt-4.1": {"claude-sonnet-4-5": 0.5, "gemini-2.5-pro": 0.25, "gpt-4o": 0.25},
    "gpt-4.1-mini": {"gemini-2.5-flash": 0.4, "claude-haiku-4-5": 0.3, "gpt-4o-mini": 0.3},
    "o4-mini": {"gemini-2.5-pro": 0.4, "claude-sonnet-4-5": 0.4, "gpt-4o": 0.2},
    "claude-sonnet-4-5": {
        "gpt-4.1": 0.35,
        "gpt-4o": 0.3,
        "gemini-2.5-pro": 0.25,
        "claude-opus-4-1": 0.1,
    },
    "claude-haiku-4-5": {"gpt-4o-mini": 0.4, "gemini-2.5-flash": 0.35, "claude-sonnet-4-5": 0.25},
    "claude-opus-4-1": {"gpt-4o": 0.4, "gemini-2.5-pro": 0.35, "claude-sonnet-4-5": 0.25},
    "gemini-2.5-pro": {"claude-sonnet-4-5": 0.45, "gpt-4o": 0.35, "o4-mini": 0.2},
    "gemini-2.5-flash": {"gpt-4o-mini": 0.4, "claude-haiku-4-5": 0.35, "gemini-2.5-pro": 0.25},
    "mistral-large": {"gpt-4o": 0.5, "claude-sonnet-4-5": 0.5},
}


def _fallback_table(other_provider_only: bool) -> tuple[I64, F64]:
    width = max(len(c) for c in _FALLBACKS.values())
    cand = np.zeros((_M, width), dtype=np.int64)
    cum = np.ones((_M, width))
    for m, model in enumerate(MODELS):
        items = [
            (_MODEL_IDX[c], w)
            for c, w in _FALLBACKS[model].items()
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

_TRIGGERS: dict[str, tuple[str, ...]] = {
    "format_violation": (
        "complex JSON structures",
        "nested arrays",
        "missing required field",
        "trailing prose after JSON",
        "wrong enum value",
    ),
    "refusal": (
        "policy violations",
        "medical advice",
        "legal advice",
        "personal data",
        "copyrighted content",
    ),
    "hallucination": (
        "fabricated citations",
        "invented numbers",
        "entity not in source",
        "long context",
    ),
    "incomplete": ("max tokens exceeded", "truncated list", "stopped mid-answer"),
    "reasoning_error": (
        "multi-step logic",
        "arithmetic",
        "date calculations",
        "negation",
        "unit conversion",
    ),
    "provider_error": ("HTTP 500", "HTTP 502", "HTTP 503 overloaded", "connection reset"),
    "timeout": ("request timeout", "stream stalled", "first token timeout"),
    "rate_limited": ("HTTP 429", "tokens per minute limit", "requests per minute limit"),
}
_TASK_TRIGGERS: dict[tuple[str, str], tuple[str, ...]] = {
    ("format_violation", "extraction"): (
        "nested arrays",
        "complex JSON structures",
        "missing required field",
        "date formats",
        "escaped quotes",
    ),
    ("format_violation", "classification"): (
        "label outside allowed set",
        "multiple labels returned",
        "explanation instead of label",
    ),
    ("format_violation", "code"): ("unterminated code block", "wrong language", "diff format"),
    ("refusal", "writing"): (
        "policy violations",
        "violent content",
        "copyrighted content",
        "impersonation",
        "adult themes",
    ),
    ("hallucination", "extraction"): ("entity not in source", "invented numbers", "long context"),
    ("hallucination", "summarization"): ("fabricated quotes", "long context", "invented numbers"),
    ("incomplete", "code"): ("max tokens exceeded", "truncated function", "missing tests"),
    ("reasoning_error", "code"): ("off-by-one", "edge cases", "multi-step logic", "concurrency"),
}


def _trigger_table() -> tuple[Obj, I64, I64]:
    flat: list[str | None] = []
    offset = np.zeros((len(FAILURE_MODES) + 1, len(TASK_TYPES)), dtype=np.int64)
    count = np.ones_like(offset)
    for f, mode in enumerate(FAILURE_MODES):
        for t, task in enumerate(TASK_TYPES):
            tags = _TASK_TRIGGERS.get((mode, task), _TRIGGERS[mode])
            offset[f, t], count[f, t] = len(flat), len(tags)
            flat.extend(tags)
    offset[len(FAILURE_MODES), :] = len(flat)  # "no failure" row points at None
    flat.append(None)
    return np.array(flat, dtype=object), offset, count


_TRIGGER_OBJ, _TRIGGER_OFFSET, _TRIGGER_COUNT = _trigger_table()

_NAME_WORDS = (
    ("Blue", "Bright", "Cedar", "Copper", "Delta", "Echo", "Granite", "Harbor", "Iron"),
    ("Juniper", "Lumen", "Maple", "Nimbus", "Orbit", "Pioneer", "Quartz", "River", "Summit"),
    ("Tidal", "Vertex", "Willow", "Zephyr", "Aurora", "Beacon"),
)
_NAME_NOUNS = (
    "Analytics",
    "Labs",
    "Health",
    "Systems",
    "Logistics",
    "Media",
    "Robotics",
    "Finance",
    "Learning",
    "Retail",
    "Cloud",
    "Legal",
    "Travel",
    "Energy",
    "Bio",
)
_META_VALUES = {
    "feature": ("chat", "search", "support", "summaries", "ingest", "agent"),
    "region": ("us-east", "eu-west", "ap-south"),
    "app_version": ("1.4.2", "1.5.0", "2.0.1"),
    "team": ("growth", "support", "platform", "data"),
}
_CEILINGS_USD = (0.005, 0.01, 0.02, 0.05, 0.1)


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
    adjectives = [w for group in _NAME_WORDS for w in group]
    names = [f"{a} {b}" for a in adjectives for b in _NAME_NOUNS]
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
        providers = list(_INCIDENT_PROVIDERS)
        p = np.array(list(_INCIDENT_PROVIDERS.values()))
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
        metas: list[list[dict[str, str]]] = []
        tier_tilt = {"enterprise": 0.1, "pro": 0.0, "free": -0.2}
        tier_ceiling = {"enterprise": 0.2, "pro": 0.35, "free": 0.5}
        for i, acct in enumerate(accounts):
            # Per-account traits depend on the account id and seed, not on the other accounts.
            digest = hashlib.blake2b(acct.account_id.encode(), digest_size=8).digest()
            rng = _rng(self.seed, 3, int.from_bytes(digest, "big"))
            self.task_cum[i] = np.cumsum(rng.dirichlet(_TASK_SHARE * 12))
            self.tilt[i] = tier_tilt.get(acct.tier, 0.0) + rng.normal(0.0, 0.3)
            if rng.random() < 0.25:
                self.model_logit[i, :, rng.integers(_M)] += 1.2
            if rng.random() < tier_ceiling.get(acct.tier, 0.35):
                usd = _CEILINGS_USD[rng.integers(len(_CEILINGS_USD))]
                self.ceiling_nano[i] = round(usd * 1e9)
                self.ceiling_obj[i] = usd
            self.key_count[i] = (rng.integers(1, 5), rng.integers(1, 3))
            for env, env_name in enumerate(("live", "test")):
                for k in range(4):
                    raw = f"{acct.account_id}:{env_name}:{k}".encode()
                    self.key_obj[i, env, k] = (
                        "key_" + hashlib.blake2b(raw, digest_size=8).hexdigest()
                    )
            if rng.random() < 0.75:
                share = weights[i] / weights.sum()
                self.user_pool[i] = min(20_000, int(20 + 20_000 * share**0.7))
            templates: list[dict[str, str]] = []
            if rng.random() < 0.55:
                keys = [k for k in _META_VALUES if rng.random() < 0.6] or ["feature"]
                for _ in range(int(rng.integers(1, 7))):
                    templates.append(
                        {k: _META_VALUES[k][rng.integers(len(_META_VALUES[k]))] for k in keys}
                    )
            metas.append(templates)
        self.user_obj = np.array(
            [None, *(f"user_{k:05d}" for k in range(int(self.user_pool.max())))], dtype=object
        )
        self.meta_count = np.array([len(m) for m in metas], dtype=np.int64)
        self.meta_offset = np.concatenate([[0], np.cumsum(self.meta_count)[:-1]]).astype(np.int64)
        flat = [t for m in metas for t in m]
        self.meta_obj = np.empty(len(flat) + 1, dtype=object)
        for j, t in enumerate(flat):
            self.meta_obj[j] = t
        self.meta_none = len(flat)  # index of the trailing None


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


def _attempt_latency(rng: np.random.Generator, model: I64, out: I64) -> F64:
    n = model.shape[0]
    lat = _TTFT[model] * np.exp(_LAT_SIG[model] * rng.standard_normal(n))
    lat += out * _TPOT[model] * np.exp(0.25 * rng.standard_normal(n))
    tail = rng.random(n) < _TAIL_P[model]
    lat[tail] *= 1.5 + 3.0 * rng.pareto(1.5, int(tail.sum()))
    return np.asarray(lat)


def _block(plan: _Plan, b: int) -> list[dict[str, Any]]:
    lo = b * BLOCK_SIZE
    hi = min(plan.calls, lo + BLOCK_SIZE)
    n = hi - lo
    rng = _rng(plan.seed, 1, b)

    # When, who, what.
    # The k-th of a minute's c calls falls in the k-th of c equal slots of it, so the log is in
    # time order across blocks too.
    index = np.arange(lo, hi)
    minute = np.searchsorted(plan.minute_cum, index, side="right")
    in_minute = plan.minute_count[minute]
    rank = index - (plan.minute_cum[minute] - in_minute)
    offset = np.floor((rank + rng.random(n)) * MINUTE_MS / in_minute).astype(np.int64)
    t_ms = plan.start_ms + minute * MINUTE_MS + np.minimum(offset, MINUTE_MS - 1)
    acct = np.minimum(
        np.searchsorted(plan.account_cum, rng.random(n), side="right"), len(plan.account_cum) - 1
    )
    test = rng.random(n) < plan.test_share
    task = _pick(rng, plan.task_cum[acct])
    cplx = rng.beta(_CPLX_A[task], _CPLX_B[task])
    msgs = np.minimum(rng.geometric(_MSG_P[task]), 200)

    # The router's first choice, then tokens, then the cost ceiling.
    logits = plan.model_logit[acct, task] + rng.gumbel(size=(n, _M))
    logits += (plan.tilt[acct] + 0.8 * (cplx - 0.5))[:, None] * _STRENGTH[None, :]
    first = np.argmax(logits, axis=1)
    z_in, z_out = rng.standard_normal((2, n))
    inp = _IN_MED[task] * np.exp(_IN_SIG[task] * z_in + 0.6 * (cplx - 0.5))
    inp += (msgs - 1) * 150 * np.exp(0.5 * rng.standard_normal(n))
    inp = np.clip(np.rint(inp), 1, MAX_INPUT_TOKENS).astype(np.int64)
    out_f = _OUT_MED[task] * np.exp(
        _OUT_SIG[task] * (0.3 * z_in + 0.95 * z_out) + 0.5 * (cplx - 0.5)
    )
    out = np.clip(np.rint(out_f * _VERBOSITY[first]), 1, MAX_OUTPUT_TOKENS).astype(np.int64)
    ceiling = plan.ceiling_nano[acct]
    ceiling_hit = (ceiling >= 0) & (inp * _IN_NANO[first] + out * _OUT_NANO[first] > ceiling)
    first = np.where(ceiling_hit & (rng.random(n) < 0.75), _CHEAPEST_IDX[task], first)

    # Failures of the first attempt: provider-side (baseline or incident), then answer quality.
    prov = _PROVIDER_OF[first]
    p_prov = _PROV_BASE[prov]
    lat_factor = np.ones(n)
    incident = np.zeros(n, dtype=bool)
    for inc in plan.incidents:
        hit = (prov == inc.provider) & (t_ms >= inc.start_ms) & (t_ms < inc.end_ms)
        incident |= hit
        p_prov = np.where(hit, inc.failure_rate, p_prov)
        lat_factor = np.where(hit, inc.latency_factor, lat_factor)
    split = np.where(incident[:, None], _PROV_SPLIT_INCIDENT, _PROV_SPLIT_NORMAL)
    rates = np.concatenate(
        [_QUALITY_RATES[task, first] * (0.4 + 1.2 * cplx)[:, None], p_prov[:, None] * split],
        axis=1,
    )
    # One uniform draw against the cumulative rates; past the last one (index 8) = no failure.
    mode = (rng.random(n)[:, None] >= np.cumsum(rates, axis=1)).sum(axis=1)
    failed = mode < len(FAILURE_MODES)
    provider_side = failed & (mode >= 5)
    quality_side = failed & ~provider_side

    # Recovery: 1 retry, 2 fallback, 3 error (0 = nothing failed).
    retry_below = np.where(quality_side, _RECOVERY_QUALITY[0], _RECOVERY_PROVIDER[0])
    fallback_below = np.where(quality_side, _RECOVERY_QUALITY[1], _RECOVERY_PROVIDER[1])
    retry_below = np.where(incident & provider_side, _RECOVERY_INCIDENT[0], retry_below)
    fallback_below = np.where(incident & provider_side, _RECOVERY_INCIDENT[1], fallback_below)
    u = rng.random(n)
    recovery = np.where(u < retry_below, 1, np.where(u < fallback_below, 2, 3))
    recovery = np.where(failed, recovery, 0)
    error = recovery == 3
    u = rng.random(n)
    retries = np.select(
        [recovery == 1, recovery == 2, error & quality_side, error],
        [1 + (u > 0.75) + (u > 0.95), (u < 0.2) & quality_side, np.floor(u * 4), np.floor(u * 3)],
        0,
    ).astype(np.int64)
    fallback = (recovery == 2) | (error & (rng.random(n) < 0.25))
    fb_other = _FB_OTHER[0][first, _pick(rng, _FB_OTHER[1][first])]
    fb_any = _FB_ANY[0][first, _pick(rng, _FB_ANY[1][first])]
    final = np.where(fallback, np.where(provider_side, fb_other, fb_any), first)
    out_final = np.where(
        fallback,
        np.maximum(1, np.rint(out * _VERBOSITY[final] / _VERBOSITY[first])).astype(np.int64),
        out,
    )
    out_final = np.where(error & provider_side, 0, out_final)

    # Cost: answer-quality failed attempts are billed, provider-side ones are not.
    first_nano = inp * _IN_NANO[first] + out * _OUT_NANO[first]
    final_nano = inp * _IN_NANO[final] + out_final * _OUT_NANO[final]
    cost_nano = np.where(
        quality_side,
        (1 + retries) * first_nano + np.where(fallback, final_nano, 0),
        np.where(fallback, final_nano, first_nano),
    )
    cost_nano = np.where(error & provider_side, 0, cost_nano)

    # Latency, summed over attempts.
    lat_first = _attempt_latency(rng, first, out) * lat_factor
    lat_final = _attempt_latency(rng, final, out_final)
    fail_lat = np.select(
        [mode == 5, mode == 6, mode == 7],
        [
            800 * np.exp(0.7 * rng.standard_normal(n)) * lat_factor,
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
            lat_first * (1 + retries) + np.where(fallback, lat_final, 0.0),
            fail_lat * retries + lat_first,
            fail_lat * (1 + retries) + lat_final,
            fail_lat * (1 + retries) + np.where(fallback, fail_lat, 0.0),
        ],
        lat_first,
    )
    latency = np.clip(np.rint(latency), 1, MAX_LATENCY_MS).astype(np.int64)

    # Quality of the answer that was returned.
    q_mean = _QUALITY_MEAN[task, final] - 0.08 * (cplx - 0.5) - 0.04 * quality_side
    q_mean = np.where(error, 0.3, np.clip(q_mean, 0.05, 0.97))
    quality = np.round(rng.beta(q_mean * 30, (1 - q_mean) * 30), 3).astype(object)
    quality[rng.random(n) < np.where(error, 0.85, 0.10)] = None

    complexity = np.round(cplx, 3).astype(object)
    complexity[rng.random(n) < 0.07] = None
    messages = msgs.astype(object)
    messages[rng.random(n) < 0.12] = None

    u = rng.random(n)
    trigger = _TRIGGER_OBJ[
        np.where(
            u < 0.12,
            _TRIGGER_OFFSET[-1, 0],
            _TRIGGER_OFFSET[mode, task]
            + np.minimum(
                np.floor(rng.random(n) * _TRIGGER_COUNT[mode, task]), _TRIGGER_COUNT[mode, task] - 1
            ).astype(np.int64),
        )
    ]
    same_as_final = ~fallback & (rng.random(n) < 0.02)
    initial_idx = np.where(fallback | same_as_final, first, _M)

    env = test.astype(np.int64)
    key_k = np.minimum(np.floor(rng.random(n) ** 1.5 * plan.key_count[acct, env]), 3).astype(
        np.int64
    )
    api_key = plan.key_obj[acct, env, key_k]
    api_key[rng.random(n) < 0.03] = None
    pool = plan.user_pool[acct]
    user_idx = np.where(
        (pool > 0) & (rng.random(n) >= 0.05), 1 + np.floor(pool * rng.random(n) ** 2), 0
    )
    user = plan.user_obj[np.minimum(user_idx, pool).astype(np.int64)]
    meta_count = plan.meta_count[acct]
    meta_idx = np.where(
        (meta_count > 0) & (rng.random(n) >= 0.15),
        plan.meta_offset[acct] + np.floor(rng.random(n) * meta_count).astype(np.int64),
        plan.meta_none,
    )
    meta = plan.meta_obj[np.minimum(meta_idx, plan.meta_none)]

    created = np.datetime_as_string(t_ms.astype("datetime64[ms]"), unit="ms", timezone="UTC")
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
                "metadata": md and dict(md),
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
