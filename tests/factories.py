"""Random but valid call records for tests, and their conversion to the reference's form."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

TASKS = ("extraction", "classification", "summarization", "reasoning", "code", "writing")
MODELS = {
    "gpt-4o-mini": "openai",
    "gpt-4o": "openai",
    "claude-haiku-4-5": "anthropic",
    "claude-sonnet-4-5": "anthropic",
    "gemini-2.5-flash": "google",
}
QUALITY_MODES = ("format_violation", "refusal", "hallucination", "incomplete", "reasoning_error")
PROVIDER_MODES = ("provider_error", "timeout", "rate_limited")
TRIGGERS = ("nested arrays", "complex JSON", "multi-step logic", "policy", None)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def random_call(
    rng: random.Random, account_id: str, environment: str, created_at: datetime, call_id: str
) -> dict[str, Any]:
    """One record, covering every failure/recovery combination SPEC §2 allows."""
    # Skewed mixes, so that model x task cells reach the 20 scored calls optimal models need.
    task = rng.choices(TASKS, weights=(8, 4, 3, 2, 2, 1))[0]
    model = rng.choices(list(MODELS), weights=(6, 2, 4, 2, 1))[0]
    record: dict[str, Any] = {
        "call_id": call_id,
        "account_id": account_id,
        "environment": environment,
        "created_at": iso(created_at),
        "task_type": task,
        "model": model,
        "provider": MODELS[model],
        "input_tokens": rng.randint(0, 5000),
        "output_tokens": rng.randint(0, 2000),
        "cost_usd": round(rng.uniform(0, 0.05), rng.choice((4, 6, 9))),
        "latency_ms": int(rng.lognormvariate(6.5, 0.6))
        if rng.random() > 0.02
        else rng.randint(0, 99),
        "status": "success",
        "complexity_score": rng.choice((None, round(rng.random(), 3))),
        "quality_score": rng.choice((None, round(rng.random(), 3), round(rng.uniform(0.6, 1), 2))),
        "message_count": rng.choice((None, rng.randint(1, 20))),
        "cost_ceiling_hit": rng.random() < 0.1,
        "retry_count": 0,
        "fallback_used": False,
    }
    kind = rng.random()
    if kind < 0.65:
        return record  # clean success
    mode = rng.choice(QUALITY_MODES + PROVIDER_MODES)
    if model == "gpt-4o-mini" and task == "extraction" and rng.random() < 0.7:
        mode = "format_violation"  # a mode concentrated on one model: mitigations
    record["failure_mode"] = mode
    record["failure_trigger"] = rng.choice(TRIGGERS)
    if kind < 0.78:
        record["recovery"] = "retry"
        record["retry_count"] = rng.randint(1, 3)
    elif kind < 0.9:
        first = rng.choice([m for m in MODELS if m != model])
        record.update(
            recovery="fallback",
            fallback_used=True,
            initial_model=first,
            initial_provider=MODELS[first],
            retry_count=rng.choice((0, 1)),
        )
    else:
        record["status"] = "error"
        record["retry_count"] = rng.choice((0, 2))
    return record


def random_log(
    rng: random.Random,
    accounts: list[str],
    n: int,
    start: datetime,
    end: datetime,
) -> list[dict[str, Any]]:
    """n calls spread over [start, end), some pinned to day edges, both environments."""
    span = (end - start).total_seconds()
    calls: list[dict[str, Any]] = []
    for i in range(n):
        r = rng.random()
        if r < 0.05:  # the last and first instants of a UTC day
            day = start + timedelta(days=rng.randint(0, max(0, int(span // 86400) - 1)))
            midnight = day.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
            moment = midnight - timedelta(milliseconds=1) if r < 0.025 else midnight
            if not start <= moment < end:
                moment = start
        else:
            moment = start + timedelta(seconds=rng.random() * span)
        env = "test" if rng.random() < 0.2 else "live"
        account = rng.choices(accounts, weights=[3**-k for k in range(len(accounts))])[0]
        calls.append(random_call(rng, account, env, moment, f"c{i}-{rng.randrange(10**6)}"))
    return calls


def as_reference(record: dict[str, Any]) -> dict[str, Any]:
    """The record as tests/reference.py takes it: every key, datetime and Decimal."""
    full = {
        "environment": "live",
        "api_key_id": None,
        "complexity_score": None,
        "initial_model": None,
        "initial_provider": None,
        "failure_mode": None,
        "failure_trigger": None,
        "recovery": None,
        "retry_count": 0,
        "fallback_used": False,
        "quality_score": None,
        "message_count": None,
        "max_cost_per_call": None,
        "cost_ceiling_hit": False,
        "user_id": None,
        "metadata": None,
        **record,
    }
    full["created_at"] = datetime.fromisoformat(record["created_at"]).astimezone(UTC)
    full["cost_usd"] = Decimal(repr(record["cost_usd"]))
    return full
