"""perf-metrics: the hosted Metrics API behind the Perf LLM router."""

__version__ = "0.1.0"
