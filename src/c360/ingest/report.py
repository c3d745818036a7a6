"""What one ingest of one table did, for the command's output and the run log."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TableReport:
    source: str
    table: str
    rows: int
    bytes: int = 0
    seconds: float = 0.0
    partitions: int = 1
    quarantined: int = 0
    added_columns: tuple[str, ...] = ()
    high_water_mark: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
