"""`perf-metrics accounts create | update`."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from perf_metrics import accounts as admin
from perf_metrics.cli.common import (
    CliError,
    Subcommands,
    emit,
    maintenance,
    run_in_transaction,
    run_with_engine,
    unit_float,
)
from perf_metrics.settings import Settings

TIERS = ["free", "pro", "enterprise"]
ZONE_HELP = (
    "IANA zone its days are counted in, e.g. Europe/Berlin or Asia/Kolkata (not +05:30); "
    "default UTC"
)


def cmd_accounts_create(args: argparse.Namespace, settings: Settings) -> None:
    emit(
        run_in_transaction(
            settings,
            lambda c: admin.create_account(
                c,
                name=args.name,
                tier=args.tier,
                account_id=args.account_id,
                timezone=args.timezone,
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
    from perf_metrics.rollups.rezone import READERS, change_account

    preferred = None
    if args.preferred_models is not None:
        preferred = [m.strip() for m in args.preferred_models.split(",") if m.strip()]
    overrides = _task_overrides(args.task_override)
    budget: Decimal | admin.Unset | None = admin.UNSET
    if args.monthly_budget is not None:
        budget = _budget(args.monthly_budget)

    async def update(engine: AsyncEngine) -> Any:
        keys = None if args.track_metadata is None else args.track_metadata.split(",")
        async with engine.begin() as conn:
            # A zone and keys are checked before anything is written: a refused one changes
            # nothing.
            zone = None if args.timezone is None else await admin.checked_zone(conn, args.timezone)
            keys = None if keys is None else admin.checked_metadata_keys(keys)
            account = await admin.update_account(
                conn,
                args.account_id,
                tier=args.tier,
                cost_vs_quality_ratio=args.cost_vs_quality,
                latency_sensitivity=args.latency_sensitivity,
                preferred_models=preferred,
                task_overrides=overrides,
                monthly_budget_usd=budget,
            )
        if zone is None and keys is None:
            return account
        change = await change_account(
            engine, args.account_id, zone=zone, tracked_keys=keys, progress=_progress
        )
        async with engine.connect() as conn:
            return {**await admin.get_account(conn, args.account_id), "rollups_change": change}

    # A zone or keys change holds its mark's connection, the recount's, and its readers'.
    emit(run_with_engine(maintenance(settings), update, connections=2 + READERS))


def _budget(text: str) -> Decimal | None:
    if text.strip().lower() == "none":
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise CliError(
            f"--monthly-budget must be USD (e.g. 5000 or 1250.50) or none: {text!r}"
        ) from None


def _progress(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def add_commands(sub: Subcommands) -> None:
    acc = sub.add_parser("accounts", help="create or update accounts").add_subparsers(
        dest="action", required=True
    )
    p = acc.add_parser("create", help="create an account")
    p.add_argument("--name", required=True)
    p.add_argument("--tier", required=True, choices=TIERS)
    p.add_argument("--account-id")
    p.add_argument("--timezone", default="UTC", help=ZONE_HELP)
    p.set_defaults(func=cmd_accounts_create)
    p = acc.add_parser("update", help="change an account's tier or settings")
    p.add_argument("account_id")
    p.add_argument("--tier", choices=TIERS)
    p.add_argument("--cost-vs-quality", type=unit_float)
    p.add_argument("--latency-sensitivity", type=unit_float)
    p.add_argument("--preferred-models", help="comma-separated; empty string clears")
    p.add_argument("--task-override", action="append", metavar="TASK=MODEL")
    p.add_argument(
        "--timezone",
        help=ZONE_HELP + "; retroactive: the account's rollups are recounted in it, while "
        "ingest goes on",
    )
    p.add_argument(
        "--track-metadata",
        metavar="KEY,KEY",
        help="the metadata keys breakdowns can group by (group_by=metadata.KEY), at most 5, "
        "comma-separated; empty string clears. Retroactive: the account's whole history is "
        "counted by them, while ingest goes on",
    )
    p.add_argument(
        "--monthly-budget",
        metavar="USD",
        help="the monthly budget customer's cost_analysis.budget compares this local month's "
        "spending with (e.g. 5000 or 1250.50); none clears it",
    )
    p.set_defaults(func=cmd_accounts_update)
