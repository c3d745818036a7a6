"""The cutoff contract between the batch and speed layers.

A batch run for date D covers every fact with event time before ``cutoff(D)`` = the start of
D + 1 (UTC). The speed layer's additive deltas count only facts at or after the published
cutoff, so when the next batch covers a fact it is counted once, not twice.
"""

from __future__ import annotations

import datetime as dt


def cutoff(day: dt.date) -> dt.datetime:
    """End of ``day`` in UTC (exclusive), as a naive UTC datetime."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
