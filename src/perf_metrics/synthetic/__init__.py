"""A deterministic generator of a realistic synthetic call log (SPEC §2): `plan_accounts`,
`generate_calls`, `write_jsonl`. How the numbers are made: `generator.py`; the numbers
themselves: `calibration.py`."""

from perf_metrics.synthetic.calibration import PRICES
from perf_metrics.synthetic.generator import (
    BLOCK_SIZE,
    MODELS,
    PROVIDERS,
    AccountSpec,
    generate_calls,
    plan_accounts,
    write_jsonl,
)

__all__ = [
    "BLOCK_SIZE",
    "MODELS",
    "PRICES",
    "PROVIDERS",
    "AccountSpec",
    "generate_calls",
    "plan_accounts",
    "write_jsonl",
]
