"""A fixed clock for an app under test: the request clock is a dependency (deps.now)."""

from __future__ import annotations

from datetime import datetime

from fastapi import FastAPI

from perf_metrics.deps import now


def set_clock(app: FastAPI, moment: datetime) -> None:
    """Every request to `app` from here on reads `moment` as the time."""

    async def fixed() -> datetime:
        return moment

    app.dependency_overrides[now] = fixed
