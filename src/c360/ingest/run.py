"""`c360 ingest all`: every source for date D."""

from __future__ import annotations

import datetime as dt

from c360.config import Settings
from c360.ingest.archive import archive
from c360.ingest.mailchimp import ingest_mailchimp
from c360.ingest.report import TableReport
from c360.ingest.shop import ingest_shop
from c360.ingest.zendesk import ingest_zendesk
from c360.lake import Lake

SOURCES = ("mysql", "mailchimp", "zendesk", "archive")


def ingest(
    settings: Settings, day: dt.date, sources: tuple[str, ...] = SOURCES
) -> list[TableReport]:
    lake = Lake(settings.lake.url)
    reports: list[TableReport] = []
    if "mysql" in sources:
        reports += ingest_shop(settings.sources.mysql, lake, day)
    if "mailchimp" in sources:
        reports += ingest_mailchimp(settings.sources.mailchimp, lake, day)
    if "zendesk" in sources:
        reports += ingest_zendesk(settings.sources.zendesk, lake, day)
    if "archive" in sources:
        reports += archive(settings, day)
    return reports
