"""`perf-metrics migrate`."""

from __future__ import annotations

import argparse

from perf_metrics.cli.common import Subcommands, emit
from perf_metrics.settings import Settings


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> None:
    from perf_metrics.migrate import head_revision, upgrade

    upgrade(settings.database_url)
    emit({"migrated_to": head_revision()})


def add_commands(sub: Subcommands) -> None:
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
