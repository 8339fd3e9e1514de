"""The call log: the record schema, its validation, and the insert (raw rows + the queue the
rollups are folded from, in `perf_metrics.rollups`)."""
