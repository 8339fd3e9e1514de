"""The six metrics endpoints: router (edge) -> params (one MetricsQuery) -> one answer module
per endpoint -> queries (rollups) -> Postgres. docs/architecture.md has the map."""
