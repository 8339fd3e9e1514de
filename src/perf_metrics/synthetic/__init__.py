"""A deterministic generator of a realistic synthetic call log (SPEC §2): `plan_accounts`,
`account_zone` (each planned account's timezone), `TRACKED_KEYS` (the metadata keys each
tracks), `generate_calls`, `write_jsonl`. How the
numbers are made: `generator.py`; the numbers themselves: `calibration.py`."""

from perf_metrics.synthetic.calibration import PRICES
from perf_metrics.synthetic.generator import (
    ACCOUNT_ZONES,
    BLOCK_SIZE,
    MODELS,
    PROVIDERS,
    TRACKED_KEYS,
    AccountSpec,
    account_zone,
    generate_calls,
    plan_accounts,
    write_jsonl,
)

__all__ = [
    "ACCOUNT_ZONES",
    "BLOCK_SIZE",
    "MODELS",
    "PRICES",
    "PROVIDERS",
    "TRACKED_KEYS",
    "AccountSpec",
    "account_zone",
    "generate_calls",
    "plan_accounts",
    "write_jsonl",
]
