"""`uvicorn perf_metrics.main:app`: the app built from the environment."""

from perf_metrics.app import create_app

app = create_app()
