"""Ingest throughput: HTTP batches, `perf-metrics ingest`, and a row-by-row INSERT baseline.

    python bench/ingest.py [--calls 1000000] [--http-calls 1500000]

Everything runs in one scratch database on BENCH_DATABASE_URL (default: the local Postgres),
measured in the same run so the ratios are comparable. Writes bench/results/ingest.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA, CpuMeter, run_cli, scratch_database, served, write_results
from perf_metrics import synthetic
from perf_metrics.calls.schema import COLUMNS, parse_ndjson_lines
from perf_metrics.rollups.tables import ROLLUP_TABLES

ACCOUNTS = 1000
SEED = 7
END = datetime(2026, 11, 1, tzinfo=UTC)


def jsonl(calls: int, seed: int, days: int = 90, end: datetime = END) -> Path:
    path = DATA / f"calls_{calls}_{seed}_{days}d_{end:%Y%m%d%H}.jsonl"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        plan = synthetic.plan_accounts(ACCOUNTS, SEED)
        with open(path, "wb") as fp:
            synthetic.write_jsonl(
                synthetic.generate_calls(plan, days=days, calls=calls, seed=seed, end=end), fp
            )
    return path


async def row_by_row(database_url: str, lines: list[bytes]) -> float:
    """The naive way: one INSERT statement per call, no rollups."""
    rows = parse_ndjson_lines(lines)
    conn = await asyncpg.connect(database_url)
    placeholders = ", ".join(f"${i + 1}" for i in range(len(COLUMNS)))
    sql = f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({placeholders})"
    await conn.set_type_codec("jsonb", encoder=str, decoder=str, schema="pg_catalog")
    try:
        start = time.perf_counter()
        async with conn.transaction():
            for row in rows:
                await conn.execute(sql, *row)
        return len(rows) / (time.perf_counter() - start)
    finally:
        await conn.close()


def validated_batches(path: Path, calls: int) -> list[list[tuple[object, ...]]]:
    from perf_metrics.calls.load import parse_batch, read_batches

    batches = []
    with open(path, "rb") as fp:
        for first, lines in read_batches(fp):
            batches.append(parse_batch(first, lines))
            if sum(map(len, batches)) >= calls:
                break
    return batches


def validation_only(path: Path, calls: int) -> float:
    """Python's share: read and validate a file's lines into COPY rows, one core, no database."""
    from perf_metrics.calls.load import automatic_gc_paused

    with automatic_gc_paused():
        start = time.perf_counter()
        done = sum(map(len, validated_batches(path, calls)))
        return done / (time.perf_counter() - start)


async def copy_floor(database_url: str, batches: list[list[tuple[object, ...]]]) -> float:
    """The database's share at its least: COPY validated rows straight into an empty copy of
    `calls` (its primary key and time index; no duplicates check, no queue, no rollups)."""
    conn = await asyncpg.connect(database_url)
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda text: b"\x01" + text.encode(),
        decoder=bytes.decode,
        schema="pg_catalog",
        format="binary",
    )
    try:
        await conn.execute("CREATE TABLE calls_floor (LIKE calls INCLUDING ALL)")
        start = time.perf_counter()
        for rows in batches:
            async with conn.transaction():
                await conn.copy_records_to_table("calls_floor", records=rows, columns=COLUMNS)
        rate = sum(map(len, batches)) / (time.perf_counter() - start)
        await conn.execute("DROP TABLE calls_floor")
        return rate
    finally:
        await conn.close()


async def count_rollup_rows(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        counts = " + ".join(f"(SELECT count(*) FROM {t})" for t in ROLLUP_TABLES)
        return int(await conn.fetchval(f"SELECT {counts}"))
    finally:
        await conn.close()


def queue_empty(database_url: str) -> bool:
    async def check() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            return not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM calls_pending)")
        finally:
            await conn.close()

    return asyncio.run(check())


def http_ingest(
    base: str, key: str, bodies: list[bytes], clients: int, database_url: str
) -> tuple[float, float | None]:
    """Sustained calls/s posting 5,000-record batches from `clients` threads, until the last
    batch is answered and folded into the rollups (the clock stops when the queue is empty);
    and the machine's CPU time per call over the run (clients, workers and Postgres)."""
    queue = list(bodies)
    lock = threading.Lock()
    sent = [0]

    def worker() -> None:
        with httpx.Client(base_url=base, timeout=120) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                response = client.post(
                    "/v1/calls",
                    content=body,
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                )
                response.raise_for_status()
                with lock:
                    sent[0] += response.json()["received"]

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    with CpuMeter() as cpu:
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        while not queue_empty(database_url):
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
    return sent[0] / elapsed, cpu.per_call_us(sent[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000_000)
    # Three HTTP runs of a third each: ~15 s apiece, long enough to include checkpoints.
    parser.add_argument("--http-calls", type=int, default=1_500_000)
    parser.add_argument("--baseline-calls", type=int, default=20_000)
    parser.add_argument("--floor-calls", type=int, default=200_000)
    args = parser.parse_args()

    bulk = jsonl(args.calls, SEED)  # a 90-day backfill, as a bulk load is
    # What the router sends in production: recent calls in time order (other ids), 300k a day
    # as before the runs were made longer, so a batch spans as many accounts and hours.
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    live = jsonl(args.http_calls, SEED + 1, days=max(1, args.http_calls // 300_000), end=now)
    results: dict[str, object] = {"calls": args.calls, "accounts": ACCOUNTS}
    with scratch_database() as url:
        run_cli(url, "seed", "--accounts", str(ACCOUNTS), "--calls", "0", "--seed", str(SEED))

        with open(live, "rb") as fp:
            sample = [fp.readline() for _ in range(args.baseline_calls)]
        sample = [
            orjson.dumps({**orjson.loads(x), "call_id": f"rb{i}"}) for i, x in enumerate(sample)
        ]
        baseline = asyncio.run(row_by_row(url.replace("+asyncpg", ""), sample))
        print(f"row-by-row INSERT: {baseline:,.0f} calls/s", file=sys.stderr)

        with CpuMeter() as cpu:
            start = time.perf_counter()
            out = run_cli(url, "ingest", str(bulk))
            cli_rate = out["inserted"] / (time.perf_counter() - start)
        cli_cpu = cpu.per_call_us(out["inserted"])
        print(f"perf-metrics ingest: {cli_rate:,.0f} calls/s", file=sys.stderr)
        rollup_rows = asyncio.run(count_rollup_rows(url.replace("+asyncpg", "")))
        results["rollup_rows_per_call_after_ingest"] = round(rollup_rows / out["inserted"], 3)

        # The generator through the same pipeline (other call ids: nothing is a duplicate).
        with CpuMeter() as cpu:
            start = time.perf_counter()
            seeded = run_cli(url, "seed", "--accounts", str(ACCOUNTS), "--calls",
                             str(args.calls), "--seed", str(SEED + 2))["inserted"]  # fmt: skip
            seed_rate = seeded / (time.perf_counter() - start)
        seed_cpu = cpu.per_call_us(seeded)
        print(f"perf-metrics seed: {seed_rate:,.0f} calls/s", file=sys.stderr)

        batches = validated_batches(bulk, args.floor_calls)
        with CpuMeter() as cpu:
            floor = asyncio.run(copy_floor(url.replace("+asyncpg", ""), batches))
        floor_cpu = cpu.per_call_us(sum(map(len, batches)))
        del batches
        print(f"COPY straight into calls: {floor:,.0f} calls/s", file=sys.stderr)
        validation = validation_only(bulk, args.floor_calls)
        print(f"validation alone: {validation:,.0f} calls/s", file=sys.stderr)

        key = run_cli(url, "keys", "create", "--ingest")["key"]
        with open(live, "rb") as fp:
            lines = [line.rstrip(b"\n") for line in fp]
        bodies = [
            b'{"calls":[' + b",".join(lines[i : i + 5000]) + b"]}"
            for i in range(0, len(lines), 5000)
        ]
        del lines
        third = len(bodies) // 3
        plain = url.replace("+asyncpg", "")
        # As deployed (the compose file's WEB_CONCURRENCY): 2 workers, access log off.
        env = {"RATE_LIMIT_ENABLED": "false", "LOG_LEVEL": "WARNING"}
        with served(url, workers=2, **env) as base:
            http_1, http_1_cpu = http_ingest(base, key, bodies[:third], 1, plain)
            print(f"HTTP, 1 client: {http_1:,.0f} calls/s", file=sys.stderr)
            http_4, http_4_cpu = http_ingest(base, key, bodies[third : 2 * third], 4, plain)
            print(f"HTTP, 4 clients: {http_4:,.0f} calls/s", file=sys.stderr)
        with served(url, workers=2, INGEST_WAITS_FOR_FOLD="true", **env) as base:
            http_4_waiting, http_4_waiting_cpu = http_ingest(
                base, key, bodies[2 * third :], 4, plain
            )
            print(f"HTTP, 4 clients, waiting for the fold: {http_4_waiting:,.0f}", file=sys.stderr)

    cores = os.cpu_count() or 1
    rows = [
        # (label, key, calls/s, machine CPU us per call or None, target)
        ("row-by-row INSERT (no rollups)", "row_by_row", baseline, None, ""),
        (f"perf-metrics ingest, {args.calls:,} lines, rollups", "cli_ingest", cli_rate, cli_cpu,
         "100,000"),
        (f"perf-metrics seed, {args.calls:,} generated calls, rollups", "seed", seed_rate,
         seed_cpu, ""),
        ("POST /v1/calls, recent calls (300k/day), 5,000/batch, 1 client, 2 workers, until "
         "folded", "http_1_client", http_1, http_1_cpu, "30,000"),
        ("POST /v1/calls, the same, 4 clients", "http_4_clients", http_4, http_4_cpu, "30,000"),
        ("POST /v1/calls, 4 clients, INGEST_WAITS_FOR_FOLD=true (read-your-writes)",
         "http_4_clients_waiting_for_fold", http_4_waiting, http_4_waiting_cpu, ""),
        ("floor: COPY validated rows straight into calls (no rollups, no dedup), 1 connection",
         "copy_floor", floor, floor_cpu, ""),
        ("floor: validation alone (read, decode, check, build rows), 1 core",
         "validation_only", validation, None, ""),
    ]  # fmt: skip
    for _, name, rate, cpu_us, _ in rows:
        results[f"{name}_calls_per_s"] = round(rate)
        if cpu_us is not None:
            results[f"{name}_cpu_us_per_call"] = round(cpu_us, 1)
    table = [
        ("path", "calls/s", "x row-by-row", "CPU µs/call", f"bound: {cores} cores busy", "target")
    ]
    for label, _, rate, cpu_us, target in rows:
        table.append(
            (
                label,
                f"{rate:,.0f}",
                f"{rate / baseline:.1f}",
                "" if cpu_us is None else f"{cpu_us:.1f}",
                "" if cpu_us is None else f"{cores * 1e6 / cpu_us:,.0f}",
                target,
            )
        )
    print(write_results("ingest", results, table))


if __name__ == "__main__":
    main()
