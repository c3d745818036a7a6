"""`c360 ingest all`: every source for date D."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pyarrow as pa
from sqlalchemy.engine import make_url

from c360.config import Settings
from c360.ingest.archive import archive
from c360.ingest.mailchimp import ingest_mailchimp
from c360.ingest.report import TableReport
from c360.ingest.shop import ingest_shop
from c360.ingest.zendesk import ingest_zendesk
from c360.lake import Lake
from c360.lake.store import RowFilter
from c360.stores import open_store

logger = logging.getLogger(__name__)

SOURCES = ("mysql", "mailchimp", "zendesk", "archive")


def enabled_sources(settings: Settings) -> tuple[str, ...]:
    """What ``ingest`` reads for the sources this shop has (``sources.enabled``): the archive
    of the event log when the clickstream or Zendesk (whose live events use the log) is on."""
    enabled = settings.sources.enabled
    logged = ("clickstream", "zendesk")
    return tuple(
        name
        for name in SOURCES
        if name in enabled or (name == "archive" and any(s in enabled for s in logged))
    )


def archive_topics(settings: Settings) -> tuple[str, ...]:
    """The event log's topics of the enabled sources: clickstream, support (Zendesk)."""
    enabled = settings.sources.enabled
    return tuple(
        topic
        for topic, source in (("clickstream", "clickstream"), ("support", "zendesk"))
        if source in enabled
    )


def suppression_filter(settings: Settings) -> RowFilter | None:
    """Drops the rows of erased persons (c360.privacy.suppression) from what ingestion writes;
    None while no one was erased (or no store exists yet: an SQLite file is not created)."""
    url = make_url(settings.serving.url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or ":memory:").exists():
        return None
    store = open_store(settings.serving.url)
    try:
        suppression = store.suppression_list()
    finally:
        store.dispose()
    if not suppression:
        return None

    def keep(source: str, table: str, batch: pa.RecordBatch) -> pa.RecordBatch:
        kept, dropped = suppression.filter_raw(source, table, batch)
        if dropped:
            logger.info("%s.%s: %d rows of erased persons dropped", source, table, dropped)
        assert isinstance(kept, pa.RecordBatch)
        return kept

    return keep


def ingest(
    settings: Settings, day: dt.date, sources: tuple[str, ...] = SOURCES
) -> list[TableReport]:
    lake = Lake(settings.lake.url, keep=suppression_filter(settings))
    reports: list[TableReport] = []
    if "mysql" in sources:
        reports += ingest_shop(settings.sources.mysql, lake, day)
    if "mailchimp" in sources:
        reports += ingest_mailchimp(settings.sources.mailchimp, lake, day)
    if "zendesk" in sources:
        reports += ingest_zendesk(settings.sources.zendesk, lake, day)
    if "archive" in sources:
        reports += archive(settings, day, archive_topics(settings), lake=lake)
    return reports
