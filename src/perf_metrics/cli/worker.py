"""`perf-metrics worker`: alert evaluation and webhook delivery in a process of its own; and
`perf-metrics listen`, a receiver to watch them arrive during development."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from perf_metrics.cli.common import Subcommands
from perf_metrics.settings import Settings


def cmd_worker(args: argparse.Namespace, settings: Settings) -> None:
    from prometheus_client import start_http_server

    from perf_metrics.db import create_engine
    from perf_metrics.observability import REGISTRY, configure_logging
    from perf_metrics.webhooks.egress import Sender
    from perf_metrics.worker import Worker

    configure_logging(settings.log_level)
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_host, registry=REGISTRY)

    async def run() -> None:
        engine = create_engine(settings)
        sender = Sender(allow_loopback=settings.webhooks_allow_loopback)
        work = asyncio.create_task(
            Worker(engine, sender, interval_s=settings.worker_interval_s).run()
        )
        # SIGTERM, SIGINT and SIGHUP end the round in progress at its next await: a delivery
        # claimed and not yet recorded is sent again once its lease runs out (at least once).
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, work.cancel)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await work
        finally:
            await sender.close()
            await engine.dispose()

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
    add_listen_command(sub)


def cmd_listen(args: argparse.Namespace, settings: Settings) -> None:
    """A webhook receiver for development: one JSON line per delivery on stdout, its
    signature checked with the spec's library when --secret is given (400 when it fails)."""
    import json
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import WebhookVerificationError

    verifier = Webhook(args.secret) if args.secret else None

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms ACK wait

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            verified: bool | None = None
            if verifier is not None:
                try:
                    verifier.verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
            try:
                event = json.loads(body)
            except ValueError:
                event = {"body": body.decode("utf-8", "replace")}
            line = {"webhook-id": headers.get("webhook-id"), "verified": verified, **event}
            print(json.dumps(line), flush=True)
            self.send_response(400 if verified is False else 200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *a: object) -> None:
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on http://{args.host}:{args.port}/ (Ctrl-C to stop)", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()


def add_listen_command(sub: Subcommands) -> None:
    p = sub.add_parser(
        "listen", help="a local webhook receiver for development: prints each event it gets"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--secret", help="the endpoint's whsec_ secret: check every signature")
    p.set_defaults(func=cmd_listen)
