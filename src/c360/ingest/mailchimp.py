"""Mailchimp into the lake: the audience (members) and campaign email activity for date D.

Input is the CSV audience export plus API-shaped email activity files in
``sources.mailchimp.dir`` (the Marketing API client arrives with the ingestion issue).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from c360.config import MailchimpSourceSettings
from c360.ingest.report import TableReport
from c360.lake import Lake
from c360.sources import mailchimp

SOURCE = "mailchimp"


def ingest_mailchimp(
    settings: MailchimpSourceSettings, lake: Lake, day: dt.date
) -> list[TableReport]:
    folder = Path(settings.dir)
    reports = []
    for table, read in (
        ("members", mailchimp.read_members_export),
        ("email_activity", mailchimp.read_email_activity),
    ):
        started = time.perf_counter()
        manifest = lake.write_partition(SOURCE, table, day, read(folder))
        reports.append(
            TableReport(
                SOURCE,
                table,
                manifest.rows,
                manifest.bytes,
                time.perf_counter() - started,
                added_columns=manifest.added_columns,
            )
        )
    return reports
