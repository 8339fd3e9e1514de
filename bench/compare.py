"""Read latency of this checkout against another commit, in one run, requests interleaved.

    python bench/compare.py REV [--size 1000000] [--requests 300]

On a noisy machine two benchmark runs minutes apart differ by more than most changes do, so
this serves the same call log from two servers at once, one from this checkout's `src/` and
one from REV's (a `git worktree` in a temporary folder), and alternates requests between them
(A, B, B, A, ...), endpoint by endpoint, for the largest account, response cache off. What
differs between the two columns is the code, not the minute. It also checks that both give
the same answer, byte for byte (`same answer`). Results:
`bench/results/compare.{json,md}`, with the ratio new / old of each percentile.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, run_cli, served, write_results
from datasets import ensure
from read import ENDPOINTS, pct, pick_accounts


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="perf-metrics-compare-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), rev], cwd=ROOT, check=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, check=True)


def served_from(src: Path, database_url: str) -> AbstractContextManager[str]:
    """`perf-metrics serve` (1 worker, cache off) importing the package from `src`."""
    return served(
        database_url,
        workers=1,
        PYTHONPATH=str(src),
        RATE_LIMIT_ENABLED="false",
        RESPONSE_CACHE_ENTRIES="0",
        LOG_LEVEL="WARNING",
    )


def interleaved(bases: dict[str, str], key: str, requests: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {key}"}
    clients = {name: httpx.Client(base_url=base, headers=headers) for name, base in bases.items()}
    try:
        for endpoint, query in ENDPOINTS.items():
            path = f"/v1/metrics/{endpoint}?{query}"
            times: dict[str, list[float]] = {name: [] for name in clients}
            bodies: dict[str, set[bytes]] = {name: set() for name in clients}
            for name in clients:  # warm both, keeping what they answer
                for _ in range(10):
                    response = clients[name].get(path)
                    response.raise_for_status()
                    bodies[name].add(response.content)
            order = list(clients)
            for i in range(requests):
                for name in order if i % 2 == 0 else order[::-1]:  # A B, B A, ...
                    started = time.perf_counter()
                    clients[name].get(path).raise_for_status()
                    times[name].append((time.perf_counter() - started) * 1000)
            out[endpoint] = {
                name: {p: round(pct(t, float(p[1:])), 2) for p in ("p50", "p95", "p99")}
                for name, t in times.items()
            }
            # The same log, the same question: the two commits must give the same bytes.
            out[endpoint]["same_answer"] = len(set().union(*bodies.values())) == 1
            for p in ("p50", "p95", "p99"):
                out[endpoint][f"ratio_{p}"] = round(
                    out[endpoint]["new"][p] / out[endpoint]["old"][p], 3
                )
    finally:
        for client in clients.values():
            client.close()
    return out


def table(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        (
            "endpoint",
            "old p50 ms",
            "new p50 ms",
            "old p95 ms",
            "new p95 ms",
            "new/old p50",
            "new/old p95",
            "same answer",
        )
    ]
    for endpoint, r in result["endpoints"].items():
        rows.append(
            (
                endpoint,
                str(r["old"]["p50"]),
                str(r["new"]["p50"]),
                str(r["old"]["p95"]),
                str(r["new"]["p95"]),
                str(r["ratio_p50"]),
                str(r["ratio_p95"]),
                "yes" if r["same_answer"] else "NO",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rev", help="the commit to compare against (e.g. HEAD~3)")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    old_commit = subprocess.run(
        ["git", "rev-parse", "--short", args.rev],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    url, _ = ensure(args.size)
    account_id, account_calls = asyncio.run(pick_accounts(url))["largest"]
    run_cli(url, "accounts", "update", account_id, "--tier", "enterprise")
    key = run_cli(url, "keys", "create", "--account", account_id)["key"]
    with (
        worktree(args.rev) as old,
        served_from(old / "src", url) as old_base,
        served_from(ROOT / "src", url) as new_base,
    ):
        endpoints = interleaved({"old": old_base, "new": new_base}, key, args.requests)
    result = {
        "calls": args.size,
        "account_calls": account_calls,
        "old": old_commit,
        "requests": args.requests,
        "endpoints": endpoints,
    }
    print(write_results("compare", result, table(result)))


if __name__ == "__main__":
    main()
