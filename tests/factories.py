"""Call records for tests: one `iso`, the builders of fixed records (`json_call` for the JSON
form POST /v1/calls takes, `reference_call` for the form tests/reference.py takes), random but
valid records, and their conversion to the reference's form."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

# SPEC §2's task types and failure modes; the models and triggers random records use.
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

# Zones the local-day tests run in (SPEC §9): whole, half and three-quarter hour offsets, a
# 30-minute DST shift, and the two ends of the offset range (UTC+14 and UTC-12).
SAMPLE_ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
)

MISSING: Final = object()
"""As the value of a record's field: leave the field out."""


def iso(
    moment: datetime, offset: timedelta = timedelta(0), *, timespec: str = "milliseconds"
) -> str:
    """RFC 3339 in the given UTC offset ("Z" for UTC), to `timespec` as `isoformat` takes it."""
    text = moment.astimezone(timezone(offset)).isoformat(timespec=timespec)
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def at(y: int, mo: int, d: int, h: int = 12, mi: int = 0, s: int = 0) -> datetime:
    """A moment in UTC, noon unless said."""
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


# Every field of a call record in SPEC §2's order, with the value of a record that does not say:
# the reference's form (created_at an aware datetime, cost_usd a Decimal, every key present).
REFERENCE_DEFAULTS: Final[Mapping[str, Any]] = {
    "call_id": "c-1",
    "account_id": "acct_test",
    "environment": "live",
    "api_key_id": None,
    "created_at": at(2024, 3, 10),
    "task_type": "extraction",
    "complexity_score": None,
    "model": "gpt-4o-mini",
    "provider": "openai",
    "initial_model": None,
    "initial_provider": None,
    "input_tokens": 100,
    "output_tokens": 50,
    "cost_usd": Decimal("0.001"),
    "latency_ms": 500,
    "status": "success",
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
}
CALL_FIELDS: Final = tuple(REFERENCE_DEFAULTS)
# The fields a record must have, as JSON carries them.
JSON_DEFAULTS: Final[Mapping[str, Any]] = {
    "call_id": "c-1",
    "account_id": "acct_test",
    "created_at": "2024-03-10T12:00:00.000Z",
    "task_type": "code",
    "model": "gpt-4o-mini",
    "provider": "openai",
    "input_tokens": 100,
    "output_tokens": 50,
    "cost_usd": 0.001,
    "latency_ms": 500,
    "status": "success",
}


@dataclass(frozen=True)
class CallBuilder:
    """Builds call records: the `defaults`, in SPEC §2's field order, with each record's own
    fields laid over them. A field that is not among the defaults goes last, in the order given;
    the value MISSING leaves a field out.

    With `call_ids`, every record takes the next id from it (also one given its own call_id, so
    that the numbering does not depend on which records were named). With `known_fields_only`,
    a field outside SPEC §2 is a mistake in the test, not a record to send.
    """

    defaults: Mapping[str, Any]
    call_ids: Iterator[str] | None = None
    known_fields_only: bool = False

    def __post_init__(self) -> None:
        assert set(self.defaults) <= set(CALL_FIELDS), set(self.defaults) - set(CALL_FIELDS)

    def __call__(self, call_id: str | None = None, /, **fields: Any) -> dict[str, Any]:
        record = {name: self.defaults[name] for name in CALL_FIELDS if name in self.defaults}
        if self.call_ids is not None:
            record["call_id"] = next(self.call_ids)
        if call_id is not None:
            record["call_id"] = call_id
        if self.known_fields_only:
            assert set(fields) <= set(CALL_FIELDS), set(fields) - set(CALL_FIELDS)
        record.update(fields)
        return {name: value for name, value in record.items() if value is not MISSING}

    def but(self, *, call_ids: Iterator[str] | None = None, **defaults: Any) -> CallBuilder:
        """This builder with some defaults changed (or added) and, if given, its own ids."""
        ids = self.call_ids if call_ids is None else call_ids
        return CallBuilder({**self.defaults, **defaults}, ids, self.known_fields_only)


json_call = CallBuilder(JSON_DEFAULTS)
reference_call = CallBuilder(REFERENCE_DEFAULTS, known_fields_only=True)
# One priced gpt-4o call of acct_review: what the regression tests filed beside each unit send.
review_call = json_call.but(
    account_id="acct_review",
    created_at="2026-03-03T10:00:00Z",
    model="gpt-4o",
    input_tokens=1000,
    output_tokens=100,
    cost_usd=0.01,
    latency_ms=300,
)


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
    zone: str = "UTC",
) -> list[dict[str, Any]]:
    """n calls spread over [start, end), some pinned to the edges of `zone`'s days, both
    environments."""
    span = (end - start).total_seconds()
    calls: list[dict[str, Any]] = []
    tz = ZoneInfo(zone)
    for i in range(n):
        r = rng.random()
        if r < 0.05:  # the last and first instants of a day
            day = start + timedelta(days=rng.randint(0, max(0, int(span // 86400) - 1)))
            next_day = day.astimezone(tz).date() + timedelta(days=1)
            midnight = datetime.combine(next_day, time(0), tz).astimezone(UTC)
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
    created_at = datetime.fromisoformat(record["created_at"]).astimezone(UTC)
    return reference_call(
        **{**record, "created_at": created_at, "cost_usd": Decimal(repr(record["cost_usd"]))}
    )
