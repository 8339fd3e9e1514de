"""`perf-metrics ingest FILE.jsonl|-`."""

from __future__ import annotations

import argparse
import os
import sys

from perf_metrics.cli.common import CliError, Subcommands, emit, run_with_engine
from perf_metrics.settings import Settings


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> None:
    from tqdm import tqdm

    from perf_metrics.calls.load import BadLine, load_jsonl, open_input

    stream = open_input(args.file)
    size = os.fstat(stream.fileno()).st_size if args.file != "-" else None
    progress = tqdm(
        total=size,
        unit="B",
        unit_scale=True,
        desc="ingest",
        file=sys.stderr,
        disable=None if size and size > 5_000_000 else True,  # large files on a terminal
    )
    try:
        # Three connections: one stores batches, one folds them into the rollups, and the folder's
        # vacuum of the queue (every 200,000 calls) takes a third: with two, a batch could
        # wait for it past the pool's timeout (a 1M seed failed so, with a short pool timeout).
        result = run_with_engine(
            settings, lambda engine: load_jsonl(engine, stream, progress), connections=3
        )
    except BadLine as exc:
        progress.close()
        for error in exc.errors[:20]:
            field = f" {error['field']}:" if error["field"] else ""
            print(f"line {error['line']}:{field} {error['message']}", file=sys.stderr)
        raise CliError(
            f"{exc.total} invalid field(s) in the batch starting near line {exc.errors[0]['line']};"
            " that batch was not written (earlier batches were)."
        ) from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    progress.close()
    emit(result.as_json())


def add_commands(sub: Subcommands) -> None:
    p = sub.add_parser("ingest", help="load a JSONL file of call records (- for stdin)")
    p.add_argument("file")
    p.set_defaults(func=cmd_ingest)
