"""`perf-metrics seed`: a realistic synthetic call log, loaded or written as JSONL."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from perf_metrics.cli.common import CliError, Subcommands, emit, run_with_engine
from perf_metrics.settings import Settings


def cmd_seed(args: argparse.Namespace, settings: Settings) -> None:
    from tqdm import tqdm

    from perf_metrics import synthetic
    from perf_metrics.calls.load import seed

    end = datetime.now(UTC)
    if args.end:
        end = datetime.fromisoformat(args.end)
        if end.tzinfo is None:
            raise CliError("--end needs a UTC offset, e.g. 2026-11-01T00:00:00Z")
    if args.jsonl:
        plan = synthetic.plan_accounts(args.accounts, args.seed)
        chunks = synthetic.generate_calls(
            plan, days=args.days, calls=args.calls, seed=args.seed, end=end
        )
        if args.jsonl == "-":
            synthetic.write_jsonl(chunks, sys.stdout.buffer)
            return
        with open(args.jsonl, "wb") as fp:
            count = synthetic.write_jsonl(chunks, fp)
        emit({"written": count, "file": args.jsonl, "accounts": [a.account_id for a in plan]})
        return
    progress = tqdm(total=args.calls, unit="call", desc="seed", file=sys.stderr, disable=None)
    # Three connections: one stores batches, one folds them into the rollups, and the folder's
    # vacuum of the queue (every 200,000 calls) takes a third: with two, a batch could wait
    # for it past the pool's timeout (a 1M seed failed so, with a short pool timeout).
    result = run_with_engine(
        settings,
        lambda engine: seed(
            engine,
            accounts=args.accounts,
            days=args.days,
            calls=args.calls,
            seed_value=args.seed,
            end=end,
            progress=progress,
        ),
        connections=3,
    )
    progress.close()
    emit(result)


def add_commands(sub: Subcommands) -> None:
    p = sub.add_parser("seed", help="generate a realistic synthetic call log and load it")
    p.add_argument("--accounts", type=int, default=5)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--calls", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--jsonl", metavar="FILE", help="write JSONL (- for stdout) instead of loading")
    p.add_argument("--end", help="end of the log (RFC 3339; default now): reproducible logs")
    p.set_defaults(func=cmd_seed)
