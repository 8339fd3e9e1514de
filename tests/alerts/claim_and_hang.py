"""A worker that dies between claim and send: it claims every due delivery (committing its
lease, as the worker does), says so on stdout, and hangs until it is killed."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from perf_metrics.db import create_engine
from perf_metrics.settings import Settings
from perf_metrics.webhooks import delivery


async def main(database_url: str) -> None:
    engine = create_engine(Settings(database_url=database_url))
    async with engine.connect() as conn:
        claims = await delivery.claim(conn, datetime.now(UTC))
    print(f"claimed {len(claims)}", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
