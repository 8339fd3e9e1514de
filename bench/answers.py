"""More answers (SPEC §14, issue #17) at 10M calls, in one run.

    python bench/datasets.py 10000000          # once: builds (or reuses) the 10M call log
    python bench/answers.py [--size 10000000] [--requests 300] [--rounds 3]
                            [--parts read,size,ingest] [--before ee10556] [--ingest-rounds 2]

Each measurement against its target in the issue's "Speed" section:

- read: p50/p95/p99 over HTTP of every endpoint for the largest account (most live calls),
  days=90 ending 2026-11-26 (providers: 168 hours), one uvicorn worker, response cache off,
  rate limit off, a customer key made with the CLI; the account has a monthly budget (so
  customer computes `budget`), and customer is asked twice more: with
  baseline_model=claude-sonnet-4-5 and with the default. Breakdown by model and by user
  (limit 20). The same server code at --before (the commit before these answers, served from
  a worktree of it, same database) in the same rounds: endpoint by endpoint, request by
  request, both servers alternating, the order reversed every other round. Target: every
  p95 here under 30 ms; performance's with its percentiles.
- size: the rollups on disk at this size (pg_total_relation_size, after VACUUM FULL of the
  per-model and account rollups, which the migration rewrote): what the per-model latency
  histograms add (their bytes and bins per row) and the account rollup's attempts column.
- ingest: `perf-metrics ingest` CPU µs per call of bench/ingest.py's 1M-line file into a fresh
  database (bench/breakdown.py's `ingest_part`: alternating rounds, a 60 s statement timeout),
  at --before and here. Target: at most 1.15 times before's.

A run of some parts keeps the other parts' last numbers in the results.

Writes bench/results/answers.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from breakdown import INGEST_STATEMENT_TIMEOUT_MS, ingest_part, largest_account
from common import ROOT, machine, run_cli, served, write_results
from compare import worktree
from read import END_DATE, END_TIME, pct
from zones import fetch

PARTS = ("read", "size", "ingest")
BEFORE = "ee10556"  # the last commit before SPEC §14's answers
TARGET_MS = 30.0
INGEST_TARGET = 1.15
BUDGET_USD = "250000"
DAY_QUERY = f"days=90&end_date={END_DATE}"
PATHS = {
    "overview": f"/v1/metrics/overview?{DAY_QUERY}",
    "customer": f"/v1/metrics/customer?{DAY_QUERY}",
    "customer baseline_model": (
        f"/v1/metrics/customer?{DAY_QUERY}&baseline_model=claude-sonnet-4-5"
    ),
    "performance": f"/v1/metrics/performance?{DAY_QUERY}",
    "failures": f"/v1/metrics/failures?{DAY_QUERY}",
    "providers": f"/v1/metrics/providers?hours=168&end_time={END_TIME}",
    "daily": f"/v1/metrics/daily?{DAY_QUERY}",
    "breakdown model": f"/v1/metrics/breakdown?{DAY_QUERY}&group_by=model",
    "breakdown user": f"/v1/metrics/breakdown?{DAY_QUERY}&group_by=user",
}
NEW_ONLY = {"customer baseline_model"}  # a parameter the code before did not have
SERVER_ENV = {"RATE_LIMIT_ENABLED": "false", "RESPONSE_CACHE_ENTRIES": "0"}


def read_part(url: str, key: str, requests: int, rounds: int, before: str) -> dict[str, Any]:
    """Every endpoint here and at `before`, interleaved request by request, in rounds."""
    times: dict[str, dict[str, list[float]]] = {"here": {}, "before": {}}
    with worktree(before) as old:
        old_env = {**SERVER_ENV, "PYTHONPATH": str(old / "src")}
        with served(url, **SERVER_ENV) as here_base, served(url, **old_env) as before_base:
            clients = {
                "here": httpx.Client(
                    base_url=here_base, headers={"Authorization": f"Bearer {key}"}
                ),
                "before": httpx.Client(
                    base_url=before_base, headers={"Authorization": f"Bearer {key}"}
                ),
            }
            try:
                bodies = {}
                for name, path in PATHS.items():  # warm: each server's caches filled once
                    for variant, client in clients.items():
                        if variant == "before" and name in NEW_ONLY:
                            continue
                        for _ in range(3):
                            response = client.get(path)
                            response.raise_for_status()
                        if variant == "here":
                            bodies[name] = response.json()
                        elif name == "overview" and "data_as_of" in response.json():
                            raise RuntimeError(f"the server at {before} serves this code")
                per_round = max(1, requests // rounds)
                for r in range(rounds):
                    order = list(PATHS.items()) if r % 2 == 0 else list(PATHS.items())[::-1]
                    for name, path in order:
                        variants = ["here", "before"] if r % 2 == 0 else ["before", "here"]
                        for _ in range(per_round):
                            for variant in variants:
                                if variant == "before" and name in NEW_ONLY:
                                    continue
                                started = time.perf_counter()
                                clients[variant].get(path).raise_for_status()
                                elapsed = (time.perf_counter() - started) * 1000
                                times[variant].setdefault(name, []).append(elapsed)
                    print(f"read round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
            finally:
                for client in clients.values():
                    client.close()
    out: dict[str, Any] = {"requests_per_endpoint": per_round * rounds, "rounds": rounds}
    for variant, by_name in times.items():
        out[variant] = {
            name: {p: round(pct(values, float(p[1:])), 2) for p in ("p50", "p95", "p99")}
            for name, values in by_name.items()
        }
    customer = bodies["customer"]["cost_analysis"]
    out["answers"] = {
        "budget": customer.get("budget"),
        "vs_baseline": bodies["customer baseline_model"]["cost_analysis"]["vs_baseline"],
        "total_attempts": bodies["overview"]["summary"]["total_attempts"],
        "performance_models": sum(
            len(t["models"]) for t in bodies["performance"]["by_task_type"].values()
        ),
        "data_as_of": bodies["overview"]["data_as_of"],
    }
    return out


SIZES = """
SELECT c.relname, pg_total_relation_size(c.oid) AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
  AND (c.relname LIKE 'rollup_%' OR c.relname = 'calls')
ORDER BY 1
"""
HISTOGRAMS = """
SELECT count(*) AS rows, sum(calls)::bigint AS calls, sum(pg_column_size(hist))::bigint AS bytes,
       avg(cardinality(hist))::float8 AS bins, max(cardinality(hist)) AS max_bins
FROM rollup_model_daily
"""


def size_part(url: str) -> dict[str, Any]:
    started = time.perf_counter()
    fetch(url, "VACUUM FULL ANALYZE rollup_model_daily")
    fetch(url, "VACUUM FULL ANALYZE rollup_account_daily")
    vacuum_s = time.perf_counter() - started
    sizes = {r["relname"]: r["bytes"] for r in fetch(url, SIZES)}
    h = fetch(url, HISTOGRAMS)[0]
    account_rows = fetch(url, "SELECT count(*) FROM rollup_account_daily")[0][0]
    rollups = sum(v for k, v in sizes.items() if k.startswith("rollup_"))
    return {
        "vacuum_full_s": round(vacuum_s, 1),
        "bytes": sizes,
        "rollups_bytes": rollups,
        "model_daily_rows": h["rows"],
        "calls_per_model_row": round(h["calls"] / h["rows"], 1),
        "histogram_bytes": h["bytes"],
        "histogram_bytes_per_row": round(h["bytes"] / h["rows"], 1),
        "histogram_bins_per_row": round(h["bins"], 1),
        "histogram_max_bins": h["max_bins"],
        "attempts_bytes": 8 * account_rows,
        "growth_vs_rollups_without": round(
            (h["bytes"] + 8 * account_rows) / (rollups - h["bytes"] - 8 * account_rows), 3
        ),
    }


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("measure", "value", "target", "met")]
    read = result.get("read")
    if read:
        for name in PATHS:
            here = read["here"][name]
            old = read["before"].get(name)
            p95 = here["p95"]
            rows.append(
                (
                    f"{name} p50 / p95 / p99 ms, largest account ({read['requests_per_endpoint']} "
                    "requests each, interleaved with the commit before)",
                    f"{here['p50']} / {p95} / {here['p99']}"
                    + (f" (before: {old['p50']} / {old['p95']} / {old['p99']})" if old else ""),
                    f"p95 < {TARGET_MS:g}",
                    "yes" if p95 < TARGET_MS else "NO",
                )
            )
    size = result.get("size")
    if size:
        rows.append(
            (
                f"per-model latency histograms at {result.get('calls', 0):,} calls",
                f"{_mb(size['histogram_bytes'])} in {size['model_daily_rows']:,} rows "
                f"({size['histogram_bytes_per_row']} bytes, {size['histogram_bins_per_row']} "
                f"bins a row on average, at most {size['histogram_max_bins']}; "
                f"{size['calls_per_model_row']} calls a row); attempts "
                f"{_mb(size['attempts_bytes'])}",
                "compact",
                "",
            )
        )
        rows.append(
            (
                "rollups on disk (all, indexes included)",
                f"{_mb(size['rollups_bytes'])}: +{size['growth_vs_rollups_without']:.1%} for "
                f"these columns; calls {_mb(size['bytes']['calls'])}",
                "",
                "",
            )
        )
    ingest = result.get("ingest")
    if ingest:
        here, old = ingest["head"], ingest["before"]
        ratio = here.get("cpu_us_per_call_vs_before")
        rows.append(
            (
                f"perf-metrics ingest CPU µs/call here vs {ingest['before_commit']} "
                f"({ingest['rounds']} alternating rounds each)",
                f"{here['cpu_us_per_call']} vs {old['cpu_us_per_call']} (x{ratio}); CLI + "
                f"its backends {here['cli_and_backends_cpu_us_per_call']} vs "
                f"{old['cli_and_backends_cpu_us_per_call']} "
                f"(x{here.get('cli_and_backends_cpu_us_per_call_vs_before')})",
                f"at most x{INGEST_TARGET}",
                "yes" if ratio is not None and ratio <= INGEST_TARGET else "NO",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=300, help="per endpoint and server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--before", default=BEFORE, help="the commit compared with")
    parser.add_argument("--ingest-rounds", type=int, default=2)
    parser.add_argument("--ingest-calls", type=int, default=1_000_000)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    info = machine()
    previous = ROOT / "bench" / "results" / "answers.json"
    result: dict[str, Any] = {"commands": " ".join(["python", "bench/answers.py", *sys.argv[1:]])}
    if previous.exists() and not parts >= set(PARTS):
        old = json.loads(previous.read_text())  # a partial run keeps the other parts' numbers
        result.update({k: v for k, v in old.items() if k in ("calls", "account", *PARTS)})
    if parts & {"read", "size"}:
        a = largest_account(args.size)
        result["calls"] = args.size
        result["account"] = {"account_id": a["account_id"], "live_calls": a["account_calls_live"]}
        run_cli(a["url"], "accounts", "update", a["account_id"], "--monthly-budget", BUDGET_USD)
        if "size" in parts:
            result["size"] = size_part(a["url"])
            write_results("answers", result, table(result), info)
        if "read" in parts:
            result["read"] = read_part(a["url"], a["key"], args.requests, args.rounds, args.before)
            write_results("answers", result, table(result), info)
    if "ingest" in parts:
        ingest = ingest_part(args.before, args.ingest_rounds, args.ingest_calls,
                             INGEST_STATEMENT_TIMEOUT_MS)  # fmt: skip
        result["ingest"] = {**ingest, "rounds": args.ingest_rounds}
    print(write_results("answers", result, table(result), info))


if __name__ == "__main__":
    main()
