"""Compute engines for the batch and identity layers: DuckDB (embedded) and Spark."""

from c360.engines.base import compute, open_compute, open_engine

__all__ = ["compute", "open_compute", "open_engine"]
