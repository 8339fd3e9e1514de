"""The `perf-metrics` command (SPEC §8): JSON on stdout, errors on stderr, non-zero on error.

One module per command group (`migrate`, `accounts`, `keys`, `prices`, `ingest`, `seed`,
`rollups`, `serve` with `demo`, `worker`), each adding its subcommands to the parser; `common` holds
what they share: printing, the one helper that opens and disposes the engine, and the one
mapping from error families to exit statuses.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from perf_metrics.cli import (
    accounts,
    ingest,
    keys,
    migrate,
    prices,
    rollups,
    seed,
    serve,
    worker,
)
from perf_metrics.cli.common import CliError, RollupsDrifted, failure
from perf_metrics.settings import get_settings

__all__ = ["CliError", "RollupsDrifted", "build_parser", "main"]
GROUPS = (migrate, accounts, keys, prices, ingest, seed, rollups, serve, worker)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perf-metrics", description="Admin and serving commands for perf-metrics."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:  # never print the input: DATABASE_URL may hold a password
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        print(f"error: bad configuration: {problems}", file=sys.stderr)
        return 2
    try:
        args.func(args, settings)
    except Exception as exc:
        known = failure(exc, settings)
        if known is None:
            raise
        message, status = known
        print(f"error: {message}", file=sys.stderr)
        return status
    return 0
