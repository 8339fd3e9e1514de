"""The call log: the record schema, its validation, and the write path (raw rows + rollups)."""
