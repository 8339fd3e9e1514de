"""Alerts and webhooks (SPEC §11, issue #18): what the worker costs and how fast it delivers.

    python bench/alerts.py [--accounts 1000] [--calls 300000] [--evaluate-s 180]
                           [--events 5000] [--latency-events 300] [--parts evaluate,deliver,latency]

One scratch database, seeded with `perf-metrics seed` (the calls end now, so the 5-minute
rollup behind the failure-rate rules has its two days), one `perf-metrics worker` process per
part, a receiver on 127.0.0.1 in this process (tests/receiver.py: a threaded HTTP server that
records when each request's headers arrived).

- evaluate: 4 rules for each of --accounts accounts (projected_month_end, month_to_date_cost,
  failure_rate with a 60-minute window, provider_status), their first evaluations spread over
  their cadences (as a fleet created over time is), no webhook endpoints. The worker runs
  --evaluate-s seconds; its own CPU (utime + stime of its process, from /proc) over that time
  is the figure, against the issue's "under 10% of one core"; Postgres's CPU for the same
  work (machine-wide busy time less the worker's and this process's) is quoted beside it.
  Evaluations counted by the worker's Prometheus counter (--metrics-port).
- deliver: --events events, one delivery each, to 100 endpoints on the local receiver, all due
  at once; the worker's events per second from its start to the last one received (target:
  at least 200/s).
- ingest: what the 5-minute rollup adds to a fold, on live traffic (it counts only the last
  two days, so a backfill barely touches it): `perf-metrics ingest` of --ingest-calls calls
  over the day before now, into a fresh database, at --before and here, alternating
  (bench/zones.py's `ingest_once`: the machine's busy CPU per call).
- latency: --latency-events events written one every 50 ms (each its own committed
  transaction: the outbox write of a state change) while a worker runs; from each commit to
  the receiver's first byte of it, p50/p95/max (target: p95 under 2 s).

Writes bench/results/alerts.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.receiver import running_receiver

from common import (
    RESULTS,
    cli_path,
    cpu_busy_seconds,
    free_port,
    machine,
    run_cli,
    scratch_database,
    write_results,
)
from read import pct

PARTS = ("evaluate", "deliver", "latency", "ingest")
BEFORE = "bf56306"  # the last commit before SPEC §11's alerts (and the 5-minute rollup)
CPU_TARGET = 0.10  # of one core
RATE_TARGET = 200.0  # events/s
LATENCY_TARGET_S = 2.0
CADENCE_S = {
    "projected_month_end": 3600,
    "month_to_date_cost": 300,
    "failure_rate": 60,
    "provider_status": 300,
}


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_worker(url: str, metrics_port: int = 0) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [cli_path(), "worker", "--metrics-port", str(metrics_port)],
        env={
            **os.environ,
            "DATABASE_URL": url,
            "WEBHOOKS_ALLOW_LOOPBACK": "true",
            "LOG_LEVEL": "WARNING",
        },
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


async def sql(url: str, statement: str, *args: Any) -> Any:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(statement, *args)
    finally:
        await conn.close()


def accounts_of(url: str) -> list[str]:
    rows = asyncio.run(sql(url, "SELECT id FROM accounts ORDER BY id"))
    return [r["id"] for r in rows]


def add_rules(url: str, accounts: list[str]) -> int:
    now = datetime.now(UTC)
    rng = random.Random(5)
    rows = []
    for i, account in enumerate(accounts):
        for type_, params in (
            ("projected_month_end", {"budget_usd": 1000}),
            ("month_to_date_cost", {"budget_usd": 1000}),
            ("failure_rate", {"threshold": 0.2, "window_minutes": 60, "min_calls": 20}),
            ("provider_status", {"provider": "openai", "level": "outage"}),
        ):
            due = now + timedelta(seconds=rng.uniform(0, CADENCE_S[type_]))
            rows.append((account, f"al_bench{i}_{type_}", type_, json.dumps(params), due, now))
    asyncio.run(
        sql(
            url,
            """INSERT INTO alerts (account_id, id, environment, name, type, params,
                                   next_eval_at, created_at, updated_at)
               SELECT a, i, 'live', t, t, p::jsonb, d, c, c
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                           $6::timestamptz[]) AS x(a, i, t, p, d, c)""",
            *map(list, zip(*rows, strict=True)),
        )
    )
    return len(rows)


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def evaluate_part(url: str, accounts: list[str], seconds: float) -> dict[str, Any]:
    rules = add_rules(url, accounts)
    port = free_port()
    worker = start_worker(url, port)
    try:
        time.sleep(5)  # started, connected
        before = scrape(port)
        cpu0, busy0, me0 = process_cpu_s(worker.pid), cpu_busy_seconds(), time.process_time()
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        cpu1, busy1, me1 = process_cpu_s(worker.pid), cpu_busy_seconds(), time.process_time()
        after = scrape(port)
    finally:
        stop(worker)

    def evaluations(values: dict[str, float]) -> float:
        return sum(
            v for k, v in values.items() if k.startswith("perf_metrics_alert_evaluations_total")
        )

    done = evaluations(after) - evaluations(before)
    expected = sum(len(accounts) * seconds / c for c in CADENCE_S.values())
    worker_cpu = cpu1 - cpu0
    others = None if busy0 is None or busy1 is None else busy1 - busy0 - worker_cpu - (me1 - me0)
    errors = sum(
        v
        for k, v in after.items()
        if k.startswith("perf_metrics_alert_evaluations_total") and 'outcome="error"' in k
    )
    lag_count = after.get("perf_metrics_alert_evaluation_lag_seconds_count", 0) - before.get(
        "perf_metrics_alert_evaluation_lag_seconds_count", 0
    )
    lag_sum = after.get("perf_metrics_alert_evaluation_lag_seconds_sum", 0) - before.get(
        "perf_metrics_alert_evaluation_lag_seconds_sum", 0
    )
    return {
        "accounts": len(accounts),
        "rules": rules,
        "seconds": round(elapsed, 1),
        "evaluations": int(done),
        "evaluations_due": round(expected),
        "evaluation_errors": int(errors),
        "mean_lag_s": round(lag_sum / lag_count, 3) if lag_count else None,
        "worker_cpu_share_of_one_core": round(worker_cpu / elapsed, 4),
        "worker_cpu_us_per_evaluation": round(worker_cpu / done * 1e6) if done else None,
        "postgres_and_rest_cpu_share_of_one_core": None
        if others is None
        else round(others / elapsed, 4),
        "target_share": CPU_TARGET,
    }


def endpoints(url: str, accounts: list[str], receiver_url: str) -> list[tuple[str, str]]:
    from perf_metrics.webhooks.signing import new_secret

    now = datetime.now(UTC)
    chosen = [(a, f"we_bench{i}") for i, a in enumerate(accounts[:100])]
    asyncio.run(
        sql(
            url,
            """INSERT INTO webhook_endpoints (account_id, id, environment, url, secret,
                                              created_at, updated_at)
               SELECT a, i, 'live', $3, s, $4, $4
               FROM unnest($1::text[], $2::text[], $5::text[]) AS x(a, i, s)
               ON CONFLICT DO NOTHING""",
            [a for a, _ in chosen],
            [i for _, i in chosen],
            f"{receiver_url}/hooks",
            now,
            [new_secret() for _ in chosen],
        )
    )
    return chosen


def enqueue(url: str, targets: list[tuple[str, str]], n: int, offset: int = 0) -> None:
    """n events, each with one delivery, round-robin over the endpoints, in one statement."""
    now = datetime.now(UTC)
    events = []
    for k in range(n):
        account, endpoint = targets[k % len(targets)]
        body = orjson.dumps(
            {"type": "alert.firing", "timestamp": now.isoformat(), "data": {"n": offset + k}}
        ).decode()
        events.append((account, f"msg_b{offset + k}", endpoint, f"whd_b{offset + k}", body))
    a, e, w, d, b = map(list, zip(*events, strict=True))
    asyncio.run(
        sql(
            url,
            """WITH ev AS (
                 INSERT INTO webhook_events (account_id, id, environment, type, body, created_at)
                 SELECT a, e, 'live', 'alert.firing', b, $6
                 FROM unnest($1::text[], $2::text[], $5::text[]) AS x(a, e, b)
               )
               INSERT INTO webhook_deliveries (account_id, id, event_id, endpoint_id,
                                               next_attempt_at, created_at, updated_at)
               SELECT a, d, e, w, $6, $6, $6
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(a, e, w, d)""",
            a,
            e,
            w,
            d,
            b,
            now,
        )
    )


def deliver_part(url: str, accounts: list[str], n: int) -> dict[str, Any]:
    with running_receiver() as receiver:
        targets = endpoints(url, accounts, receiver.url)
        enqueue(url, targets, n)
        started, me0 = time.monotonic(), time.process_time()
        worker = start_worker(url)
        try:
            got = receiver.wait_for(n, timeout=600)
            last = max(r.at for r in got)
            worker_cpu = process_cpu_s(worker.pid)
            receiver_cpu = time.process_time() - me0
        finally:
            stop(worker)
    ids = [r.headers["webhook-id"] for r in got]
    rate = n / (last - started)
    return {
        "events": n,
        "received": len(got),
        "duplicates": len(ids) - len(set(ids)),
        "seconds_from_worker_start": round(last - started, 2),
        "events_per_s": round(rate, 1),
        "worker_cpu_s": round(worker_cpu, 2),
        "receiver_cpu_s": round(receiver_cpu, 2),
        "target_events_per_s": RATE_TARGET,
    }


def latency_part(url: str, accounts: list[str], n: int) -> dict[str, Any]:
    import asyncpg

    with running_receiver() as receiver:
        targets = endpoints(url, accounts, receiver.url)
        asyncio.run(sql(url, "UPDATE webhook_endpoints SET url = $1", f"{receiver.url}/hooks"))
        worker = start_worker(url)
        committed: dict[str, float] = {}

        async def write_paced() -> None:
            conn = await asyncpg.connect(url)
            try:
                for k in range(n):
                    account, endpoint = targets[k % len(targets)]
                    now = datetime.now(UTC)
                    body = orjson.dumps({"type": "alert.firing", "data": {"k": k}}).decode()
                    async with conn.transaction():
                        await conn.execute(
                            "INSERT INTO webhook_events (account_id, id, environment, type, body,"
                            " created_at) VALUES ($1, $2, 'live', 'alert.firing', $3, $4)",
                            account,
                            f"msg_l{k}",
                            body,
                            now,
                        )
                        await conn.execute(
                            "INSERT INTO webhook_deliveries (account_id, id, event_id,"
                            " endpoint_id, next_attempt_at, created_at, updated_at)"
                            " VALUES ($1, $2, $3, $4, $5, $5, $5)",
                            account,
                            f"whd_l{k}",
                            f"msg_l{k}",
                            endpoint,
                            now,
                        )
                    committed[f"msg_l{k}"] = time.monotonic()
                    await asyncio.sleep(0.05)
            finally:
                await conn.close()

        try:
            time.sleep(3)  # the worker is up
            asyncio.run(write_paced())
            got = receiver.wait_for(n, timeout=120)
        finally:
            stop(worker)
    waits = sorted(
        r.at - committed[r.headers["webhook-id"]]
        for r in got
        if r.headers["webhook-id"] in committed
    )
    return {
        "events": n,
        "received": len(waits),
        "p50_s": round(pct(waits, 50), 3),
        "p95_s": round(pct(waits, 95), 3),
        "max_s": round(waits[-1], 3),
        "target_p95_s": LATENCY_TARGET_S,
    }


def ingest_live(before: str, calls: int, rounds: int) -> dict[str, Any]:
    from compare import worktree
    from ingest import jsonl
    from zones import SEED, ingest_once

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    path = jsonl(calls, SEED, days=1, end=end)
    runs: list[dict[str, Any]] = []
    with worktree(before) as old:
        variants: list[tuple[str, Path | None]] = [("before", old / "src"), ("head", None)]
        for r in range(rounds):
            for variant, src in variants if r % 2 == 0 else variants[::-1]:
                result = ingest_once(variant, src, path, len(runs))
                print(f"ingest {variant}: {result}", file=sys.stderr)
                runs.append(result)
    path.unlink()  # a day that is no longer "now" next time
    mean = {
        v: round(sum(r["cpu_us_per_call"] for r in runs if r["variant"] == v) / rounds, 1)
        for v in ("before", "head")
    }
    return {
        "before_commit": before,
        "calls": calls,
        "rounds": rounds,
        "cpu_us_per_call": mean,
        "head_vs_before": round(mean["head"] / mean["before"], 3),
        "runs": runs,
    }


def worker_parts(args: argparse.Namespace, parts: list[str], results: dict[str, Any]) -> None:
    """The parts that run `perf-metrics worker` on one seeded scratch database."""
    with scratch_database() as url:
        print(f"seeding {args.calls:,} calls for {args.accounts} accounts ...", flush=True)
        run_cli(
            url,
            "seed",
            "--accounts",
            str(args.accounts),
            "--calls",
            str(args.calls),
            "--days",
            "35",
        )
        accounts = accounts_of(url)
        if "evaluate" in parts:
            print(f"evaluate: {len(accounts) * 4} rules for {args.evaluate_s:g} s", flush=True)
            results["evaluate"] = evaluate_part(url, accounts, args.evaluate_s)
            print(results["evaluate"], flush=True)
            asyncio.run(sql(url, "DELETE FROM alerts"))
        if "deliver" in parts:
            results["deliver"] = deliver_part(url, accounts, args.events)
            print(results["deliver"], flush=True)
        if "latency" in parts:
            results["latency"] = latency_part(url, accounts, args.latency_events)
            print(results["latency"], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=300_000)
    parser.add_argument("--evaluate-s", type=float, default=180)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--latency-events", type=int, default=300)
    parser.add_argument("--ingest-calls", type=int, default=500_000)
    parser.add_argument("--ingest-rounds", type=int, default=2)
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument("--parts", default=",".join(PARTS))
    args = parser.parse_args()
    parts = args.parts.split(",")
    info = machine()
    previous = RESULTS / "alerts.json"
    results: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
    results.pop("machine", None)
    if {"evaluate", "deliver", "latency"} & set(parts):
        worker_parts(args, parts, results)
    if "ingest" in parts:
        results["ingest"] = ingest_live(args.before, args.ingest_calls, args.ingest_rounds)
    table: list[tuple[str, ...]] = [("measure", "value", "target")]
    if "evaluate" in results:
        e = results["evaluate"]
        table += [
            (
                f"worker CPU, {e['rules']} rules of {e['accounts']} accounts "
                f"({e['evaluations']} evaluations in {e['seconds']} s, {e['evaluations_due']} due)",
                f"{e['worker_cpu_share_of_one_core']:.1%} of one core "
                f"({e['worker_cpu_us_per_evaluation']} µs each)",
                f"< {CPU_TARGET:.0%}",
            ),
            (
                "Postgres (and the rest of the machine) meanwhile",
                f"{e['postgres_and_rest_cpu_share_of_one_core']:.1%} of one core",
                "",
            ),
            (
                "evaluation errors; mean lag after due",
                f"{e['evaluation_errors']}; {e['mean_lag_s']} s",
                "",
            ),
        ]
    if "deliver" in results:
        d = results["deliver"]
        table.append(
            (
                f"delivery, {d['events']} events to a local receiver, one worker",
                f"{d['events_per_s']} events/s ({d['duplicates']} duplicates)",
                f">= {RATE_TARGET:g}/s",
            )
        )
    if "latency" in results:
        lat = results["latency"]
        table.append(
            (
                f"state change (outbox commit) to the receiver's first byte, {lat['events']} "
                "events at 20/s",
                f"p50 {lat['p50_s']} s, p95 {lat['p95_s']} s, max {lat['max_s']} s",
                f"p95 < {LATENCY_TARGET_S:g} s",
            )
        )
    if "ingest" in results:
        i = results["ingest"]
        table.append(
            (
                f"ingest CPU per call, {i['calls']:,} calls of the last day (live traffic), "
                f"here vs {i['before_commit']}",
                f"{i['cpu_us_per_call']['head']} vs {i['cpu_us_per_call']['before']} µs "
                f"({i['head_vs_before']}x)",
                "",
            )
        )
    path = write_results("alerts", results, table, info)
    print(path.read_text())


if __name__ == "__main__":
    main()
