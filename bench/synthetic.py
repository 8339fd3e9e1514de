"""The end users and tags of a benchmark call log's largest account, straight from the generator.

    python bench/synthetic.py [10000000]

What `bench/datasets.py SIZE` would load for `acct_demo_000` (1,000 accounts, seed 7, 90 days),
counted from `generate_calls` without a database: distinct users (all and live), users with one
call, calls without a user, and per metadata key its distinct values, the calls lacking it, and
the calls with no metadata at all. Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import ACCOUNTS, END, SEED
from perf_metrics.synthetic import generate_calls, plan_accounts
from perf_metrics.synthetic.calibration import META_VALUES

ACCOUNT = "acct_demo_000"


def census(calls: int) -> dict[str, object]:
    started = time.perf_counter()
    plan = plan_accounts(ACCOUNTS, SEED)
    chunks = generate_calls(plan, days=90, calls=calls, seed=SEED, end=datetime.fromisoformat(END))
    users: Counter[str | None] = Counter()
    live_users: set[str] = set()
    values: dict[str, set[str]] = {key: set() for key in META_VALUES}
    lacking: Counter[str] = Counter()
    n = untagged = 0
    for chunk in chunks:
        for r in chunk:
            if r["account_id"] != ACCOUNT:
                continue
            n += 1
            user = r["user_id"]
            users[user] += 1
            if user is not None and r["environment"] == "live":
                live_users.add(user)
            meta = r["metadata"]
            if meta is None:
                untagged += 1
                continue
            for key, seen in values.items():
                if key in meta:
                    seen.add(meta[key])
                else:
                    lacking[key] += 1
    nulls = users.pop(None, 0)
    return {
        "calls": calls,
        "account": ACCOUNT,
        "account_calls": n,
        "distinct_users": len(users),
        "distinct_live_users": len(live_users),
        "users_with_one_call": sum(1 for c in users.values() if c == 1),
        "heaviest_user_calls": max(users.values(), default=0),
        "calls_without_user": nulls,
        "calls_without_metadata": untagged,
        "tags": {
            key: {"distinct_values": len(seen), "tagged_calls_lacking_it": lacking[key]}
            for key, seen in values.items()
        },
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    for size in map(int, sys.argv[1:] or ["10000000"]):
        print(json.dumps(census(size)))
