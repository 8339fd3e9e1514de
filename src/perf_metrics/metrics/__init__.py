"""The six metrics endpoints: router (edge) -> service -> queries (rollups) -> Postgres."""
