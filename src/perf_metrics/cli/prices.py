"""`perf-metrics prices list | set`: the price table, with each price's effective date."""

from __future__ import annotations

import argparse
from datetime import date

from perf_metrics import prices
from perf_metrics.cli.common import Subcommands, emit, run_in_transaction
from perf_metrics.settings import Settings


def cmd_prices_list(args: argparse.Namespace, settings: Settings) -> None:
    emit(run_in_transaction(settings, lambda c: prices.list_prices(c, args.model)))


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def cmd_prices_set(args: argparse.Namespace, settings: Settings) -> None:
    price_in = prices.checked_price("--input", args.input)
    price_out = prices.checked_price("--output", args.output)
    emit(
        run_in_transaction(
            settings,
            lambda c: prices.set_price(
                c,
                args.model,
                provider=args.provider,
                input_usd_per_mtok=price_in,
                output_usd_per_mtok=price_out,
                effective_from=args.effective,
            ),
        )
    )


def add_commands(sub: Subcommands) -> None:
    group = sub.add_parser(
        "prices", help="list or set list prices (USD per million tokens), kept with history"
    ).add_subparsers(dest="action", required=True)
    p = group.add_parser("list", help="every price with the day it takes effect")
    p.add_argument("--model", help="only this model's prices")
    p.set_defaults(func=cmd_prices_list)
    p = group.add_parser(
        "set",
        help="a model's price from a day on (default today, UTC); the days before keep theirs",
    )
    p.add_argument("model")
    p.add_argument("--provider", help="required for a model without a price yet")
    p.add_argument("--input", required=True, help="USD per million input tokens, e.g. 2.50")
    p.add_argument("--output", required=True, help="USD per million output tokens, e.g. 10.00")
    p.add_argument(
        "--effective",
        type=_day,
        metavar="YYYY-MM-DD",
        help="the first day it is in force (each call's day in its account's zone); default "
        "today (UTC); a day already priced is corrected",
    )
    p.set_defaults(func=cmd_prices_set)
