"""`perf-metrics keys create | list | revoke`."""

from __future__ import annotations

import argparse

from perf_metrics import accounts as admin
from perf_metrics.cli.common import CliError, Subcommands, emit, run_in_transaction
from perf_metrics.settings import Settings


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> None:
    if args.ingest and args.account:
        raise CliError("an ingest key is platform-wide: give --ingest or --account, not both")
    if not args.ingest and not args.account:
        raise CliError("give --account ID for a customer key, or --ingest")
    if args.secret and args.ingest:
        raise CliError("--secret is an account's key: give --account ID, not --ingest")
    emit(
        run_in_transaction(
            settings,
            lambda c: admin.create_key(
                c,
                account_id=args.account,
                environment=args.environment,
                ingest=args.ingest,
                secret=args.secret,
                name=args.name,
            ),
        )
    )


def cmd_keys_list(args: argparse.Namespace, settings: Settings) -> None:
    if not args.account and not args.ingest:
        raise CliError("give --account ID, or --ingest for ingest keys")
    emit(run_in_transaction(settings, lambda c: admin.list_keys(c, account_id=args.account)))


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> None:
    emit(run_in_transaction(settings, lambda c: admin.revoke_key(c, args.key_id)))


def add_commands(sub: Subcommands) -> None:
    keys = sub.add_parser("keys", help="create, list or revoke API keys").add_subparsers(
        dest="action", required=True
    )
    p = keys.add_parser("create", help="create a key (printed once)")
    p.add_argument("--account")
    p.add_argument("--environment", choices=["live", "test"], default="live")
    p.add_argument("--ingest", action="store_true", help="a platform-wide ingest key")
    p.add_argument(
        "--secret",
        action="store_true",
        help="a secret key (sk_live_/sk_test_): a customer key's reads, and the account's "
        "alerts and webhook endpoints",
    )
    p.add_argument("--name")
    p.set_defaults(func=cmd_keys_create)
    p = keys.add_parser("list", help="list an account's keys (never the secrets)")
    p.add_argument("--account")
    p.add_argument("--ingest", action="store_true", help="list ingest keys")
    p.set_defaults(func=cmd_keys_list)
    p = keys.add_parser("revoke", help="revoke a key, effective on the next request")
    p.add_argument("key_id")
    p.set_defaults(func=cmd_keys_revoke)
