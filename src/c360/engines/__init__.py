"""Compute engines for the batch and identity layers: DuckDB (embedded) and Spark."""

from c360.engines.base import ComputeEngine, LakeInput, Step, StepError, compute, open_engine

__all__ = ["ComputeEngine", "LakeInput", "Step", "StepError", "compute", "open_engine"]
