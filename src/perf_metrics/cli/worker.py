"""`perf-metrics worker`: alert evaluation and webhook delivery in a process of its own."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from perf_metrics.cli.common import Subcommands
from perf_metrics.settings import Settings


def cmd_worker(args: argparse.Namespace, settings: Settings) -> None:
    from prometheus_client import start_http_server

    from perf_metrics.db import create_engine
    from perf_metrics.observability import REGISTRY, configure_logging
    from perf_metrics.serving import stop_cleanly_on_signals
    from perf_metrics.webhooks.egress import Sender
    from perf_metrics.worker import Worker

    configure_logging(settings.log_level)
    stop_cleanly_on_signals()
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_host, registry=REGISTRY)

    async def run() -> None:
        engine = create_engine(settings)
        sender = Sender(allow_loopback=settings.webhooks_allow_loopback)
        try:
            await Worker(engine, sender, interval_s=settings.worker_interval_s).run()
        finally:
            await sender.close()
            await engine.dispose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def add_commands(sub: Subcommands) -> None:
    p = sub.add_parser(
        "worker",
        help="evaluate alert rules and deliver webhooks until stopped (any number may run)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve this worker's Prometheus metrics on this port (default: none)",
    )
    p.add_argument("--metrics-host", default="127.0.0.1")
    p.set_defaults(func=cmd_worker)
