"""`perf-metrics serve` and `perf-metrics demo`: the two commands that run the server."""

from __future__ import annotations

import argparse
import os

from perf_metrics.cli.common import CliError, Subcommands
from perf_metrics.settings import Settings


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    from perf_metrics.observability import configure_logging
    from perf_metrics.serving import run_server

    configure_logging(settings.log_level)

    run_server(
        "perf_metrics.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=20,
    )


def cmd_demo(args: argparse.Namespace, settings: Settings) -> None:
    from perf_metrics.demo import DemoUnavailable, run_demo

    try:
        run_demo(args.host, args.port)
    except DemoUnavailable as exc:
        raise CliError(str(exc)) from None


def add_commands(sub: Subcommands) -> None:
    p = sub.add_parser("serve", help="serve the API with uvicorn")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "1")),
        help="worker processes (default: WEB_CONCURRENCY or 1)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "demo", help="embedded Postgres + demo data + a printed key + the server (no setup)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_demo)
