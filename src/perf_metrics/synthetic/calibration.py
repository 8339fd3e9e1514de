"""The calibration of the synthetic call log: every table of weights, rates and profiles.

Changing a number here changes the generated log (and so the demo and the benchmarks' call
logs); the generator (`generator.py`) only turns these tables into numpy arrays and draws from
them. What the numbers aim at is tested in tests/synthetic/test_synthetic.py (shares, failure mixes,
savings against gpt-4o).
"""

from __future__ import annotations

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


# The router's first-choice mix per task (weights; absent = never chosen for that task).
MODEL_MIX: dict[str, dict[str, float]] = {
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


# Per task: task share, complexity beta(a, b), input tokens (median, sigma), output tokens
# (median, sigma), geometric p of the message count.
TASK_PROFILE = {
    "extraction": (0.28, 2.0, 4.0, 1200, 0.8, 180, 0.7, 0.75),
    "classification": (0.18, 1.5, 5.0, 400, 0.7, 10, 0.6, 0.8),
    "summarization": (0.17, 2.5, 3.5, 3500, 0.9, 260, 0.6, 0.6),
    "reasoning": (0.12, 4.0, 2.5, 1500, 0.9, 450, 0.8, 0.45),
    "code": (0.13, 3.5, 2.5, 2500, 1.0, 500, 0.9, 0.3),
    "writing": (0.12, 2.5, 3.0, 800, 0.8, 550, 0.7, 0.35),
}


# Per model: time to first token (median ms), ms per output token, latency sigma, share of
# calls in the long tail, output verbosity, base quality, answer-failure multiplier.
MODEL_PROFILE = {
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


# Quality of an answer: per task type an offset (TASK_TYPES order), then per model and task.
TASK_QUALITY_OFFSET = (0.03, 0.05, 0.01, -0.06, -0.04, 0.0)
QUALITY_ADJUSTMENTS: dict[tuple[str, str], float] = {
    ("o4-mini", "reasoning"): 0.06,
    ("o4-mini", "writing"): -0.04,
    ("gemini-2.5-pro", "reasoning"): 0.02,
    ("claude-sonnet-4-5", "code"): 0.04,
    ("claude-opus-4-1", "code"): 0.03,
    ("gpt-4.1", "code"): 0.03,
    ("gemini-2.5-flash", "summarization"): 0.02,
    ("claude-haiku-4-5", "writing"): 0.01,
}


# Answer-quality failure rates per task, in FAILURE_MODES[:5] order.
TASK_FAILURES = {
    "extraction": (0.035, 0.001, 0.012, 0.004, 0.0),
    "classification": (0.015, 0.001, 0.008, 0.0, 0.003),
    "summarization": (0.003, 0.003, 0.018, 0.010, 0.0),
    "reasoning": (0.004, 0.002, 0.012, 0.006, 0.045),
    "code": (0.010, 0.002, 0.008, 0.018, 0.022),
    "writing": (0.002, 0.018, 0.005, 0.008, 0.0),
}


# Multipliers of a model's rate of one answer-quality failure mode.
FAILURE_FACTORS: tuple[tuple[str, str, float], ...] = (
    ("o4-mini", "reasoning_error", 0.5),
    ("claude-sonnet-4-5", "refusal", 1.6),
    ("claude-haiku-4-5", "refusal", 1.6),
    ("claude-opus-4-1", "refusal", 1.6),
    ("gemini-2.5-flash", "hallucination", 1.3),
    ("mistral-large", "format_violation", 1.5),
)


PROVIDER_BASE_FAILURE = {"openai": 0.006, "anthropic": 0.009, "google": 0.007, "mistral": 0.01}


# Split of provider-side failures into provider_error / timeout / rate_limited.
PROV_SPLIT_NORMAL = (0.5, 0.25, 0.25)
PROV_SPLIT_INCIDENT = (0.55, 0.35, 0.10)


# Recovery thresholds (retry below the first, fallback below the second, else error).
RECOVERY_QUALITY = (0.62, 0.85)
RECOVERY_PROVIDER = (0.45, 0.90)
RECOVERY_INCIDENT = (0.07, 0.88)


# Providers that have incidents, and how likely each is to be the one.
INCIDENT_PROVIDERS = {"openai": 0.4, "anthropic": 0.35, "google": 0.25}


# Fallback candidates per model with weights; provider-side failures use only the candidates
# of another provider.
FALLBACKS = {
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


TRIGGERS: dict[str, tuple[str, ...]] = {
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
TASK_TRIGGERS: dict[tuple[str, str], tuple[str, ...]] = {
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


NAME_WORDS = (
    ("Blue", "Bright", "Cedar", "Copper", "Delta", "Echo", "Granite", "Harbor", "Iron"),
    ("Juniper", "Lumen", "Maple", "Nimbus", "Orbit", "Pioneer", "Quartz", "River", "Summit"),
    ("Tidal", "Vertex", "Willow", "Zephyr", "Aurora", "Beacon"),
)
NAME_NOUNS = (
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
META_VALUES = {
    "feature": ("chat", "search", "support", "summaries", "ingest", "agent"),
    "team": ("growth", "support", "platform", "data"),
    # Hundreds of values: a breakdown by it spans several pages of 100.
    "workflow": tuple(f"wf_{k:04d}" for k in range(300)),
    "region": ("us-east", "eu-west", "ap-south"),
    "app_version": ("1.4.2", "1.5.0", "2.0.1"),
}
# Per metadata key (META_VALUES order): the share of tagging accounts that use it, the share of
# their tagged calls that lack it (an absent tag), and the Zipf exponent of its values (each
# account ranks the values in its own order).
META_TAGS = {
    "feature": (1.0, 0.03, 1.0),
    "team": (1.0, 0.10, 0.8),
    "workflow": (1.0, 0.05, 1.05),
    "region": (0.6, 0.02, 0.8),
    "app_version": (0.6, 0.0, 1.0),
}
# The share of accounts that tag their calls (enterprise accounts always do), and the share of
# a tagging account's calls that carry no metadata at all.
META_ACCOUNT_SHARE = 0.55
META_NONE_SHARE = 0.15

# End users: each account has a population of about one user per USER_CALLS calls it is
# expected to make (within USER_POOL), ranked by a Zipf law whose exponent is drawn per account
# from USER_ZIPF: a few heavy users and a long tail of users with a single call. USER_NONE_SHARE
# of the calls have no user_id.
USER_CALLS = 10
USER_POOL = (20, 40_000)
USER_ZIPF = (1.1, 1.3)
USER_NONE_SHARE = 0.05
CEILINGS_USD = (0.005, 0.01, 0.02, 0.05, 0.1)


# Per tier: the account's lean towards dearer models (added to its random taste), and the
# share of accounts with a per-call cost ceiling.
TIER_TILT = {"enterprise": 0.1, "pro": 0.0, "free": -0.2}
TIER_CEILING_SHARE = {"enterprise": 0.2, "pro": 0.35, "free": 0.5}
