"""Daily ingestion: every source into the lake's raw zone, incremental, atomic and idempotent."""
