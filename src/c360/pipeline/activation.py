"""Activation: a segment's audience out of c360 — to a file (CSV, Parquet) or to a Mailchimp
audience (:mod:`c360.sources.mailchimp_api`'s writer).

The audience is the segment's current members by the latest daily membership run, **only
those with marketing consent** (``marketing_consent`` true in the published profile) and an
email (:meth:`ServingStore.segment_audience`); members without consent are counted and left
out, never written or sent. A file has one row per person: ``person_id``, ``email``,
``first_name``, ``last_name``, ``entered_on`` (the batch date the person entered the segment),
``marketing_consent_source`` and ``marketing_consent_at`` (the consent fact relied on).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from c360.config import Settings
from c360.errors import ConfigError
from c360.sources.mailchimp_api import MailchimpClient, SyncReport
from c360.stores import ServingStore

FORMATS = ("csv", "parquet")


@dataclass(frozen=True)
class Exported:
    path: Path
    rows: int
    without_consent: int


MEDIA_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def audience_bytes(store: ServingStore, name: str, fmt: str) -> tuple[bytes, int]:
    """Segment ``name``'s audience (consenting members only) as a CSV or Parquet file's bytes,
    and how many members were left out."""
    audience = store.segment_audience(name)
    sink = pa.BufferOutputStream()
    if fmt == "csv":
        pa_csv.write_csv(audience.members, sink)
    else:
        pq.write_table(audience.members, sink)
    return sink.getvalue().to_pybytes(), audience.without_consent


def _write(table: pa.Table, path: Path, fmt: str) -> None:
    """Write to a temporary file next to ``path`` and rename it: a reader never sees half."""
    partial = path.with_name(f".{path.name}.partial")
    if fmt == "csv":
        pa_csv.write_csv(table, partial)
    else:
        pq.write_table(table, partial)
    os.replace(partial, path)


def export_segment(store: ServingStore, name: str, path: Path, fmt: str) -> Exported:
    """Write segment ``name``'s audience (consenting members only) to ``path``."""
    if fmt not in FORMATS:
        raise ConfigError("--format", f"{fmt!r} is not a format; accepted: {', '.join(FORMATS)}")
    audience = store.segment_audience(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(audience.members, path, fmt)
    return Exported(path, audience.members.num_rows, audience.without_consent)


def sync_segment(
    settings: Settings, store: ServingStore, name: str, tag: str | None = None
) -> tuple[SyncReport, int]:
    """Sync segment ``name`` to the configured Mailchimp audience: upsert the consenting
    members and tag them ``tag`` (default: the segment's name); untag everyone else holding
    the tag. Returns the report and how many members were left out for want of consent."""
    audience = store.segment_audience(name)
    with MailchimpClient(settings.sources.mailchimp) as client:
        report = client.sync_tag(
            tag or name,
            [
                (row["email"], row["first_name"], row["last_name"])
                for row in audience.members.select(["email", "first_name", "last_name"]).to_pylist()
            ],
        )
    return report, audience.without_consent
