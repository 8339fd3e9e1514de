"""`perf-metrics accounts create | update`."""

from __future__ import annotations

import argparse

from perf_metrics import accounts as admin
from perf_metrics.cli.common import CliError, Subcommands, emit, run_in_transaction, unit_float
from perf_metrics.settings import Settings

TIERS = ["free", "pro", "enterprise"]


def cmd_accounts_create(args: argparse.Namespace, settings: Settings) -> None:
    emit(
        run_in_transaction(
            settings,
            lambda c: admin.create_account(
                c, name=args.name, tier=args.tier, account_id=args.account_id
            ),
        )
    )


def _task_overrides(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    overrides = {}
    for pair in pairs:
        task, sep, model = pair.partition("=")
        if not sep:
            raise CliError(f"--task-override takes TASK=MODEL, got {pair!r}")
        overrides[task.strip()] = model.strip()
    return overrides


def cmd_accounts_update(args: argparse.Namespace, settings: Settings) -> None:
    preferred = None
    if args.preferred_models is not None:
        preferred = [m.strip() for m in args.preferred_models.split(",") if m.strip()]
    overrides = _task_overrides(args.task_override)
    emit(
        run_in_transaction(
            settings,
            lambda c: admin.update_account(
                c,
                args.account_id,
                tier=args.tier,
                cost_vs_quality_ratio=args.cost_vs_quality,
                latency_sensitivity=args.latency_sensitivity,
                preferred_models=preferred,
                task_overrides=overrides,
            ),
        )
    )


def add_commands(sub: Subcommands) -> None:
    acc = sub.add_parser("accounts", help="create or update accounts").add_subparsers(
        dest="action", required=True
    )
    p = acc.add_parser("create", help="create an account")
    p.add_argument("--name", required=True)
    p.add_argument("--tier", required=True, choices=TIERS)
    p.add_argument("--account-id")
    p.set_defaults(func=cmd_accounts_create)
    p = acc.add_parser("update", help="change an account's tier or settings")
    p.add_argument("account_id")
    p.add_argument("--tier", choices=TIERS)
    p.add_argument("--cost-vs-quality", type=unit_float)
    p.add_argument("--latency-sensitivity", type=unit_float)
    p.add_argument("--preferred-models", help="comma-separated; empty string clears")
    p.add_argument("--task-override", action="append", metavar="TASK=MODEL")
    p.set_defaults(func=cmd_accounts_update)
