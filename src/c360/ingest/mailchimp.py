"""Mailchimp into the lake: audience members and campaign email activity for date D.

Two inputs, one lake shape:

- **API** (``sources.mailchimp.api_key`` set): the audience in full (a snapshot: members who
  left are gone from it), the campaigns sent before the cutoff of D, and the email activity of
  those sent in the last ``activity_window_days`` (opens and clicks keep arriving for weeks
  after a send; older campaigns' activity is already in earlier partitions);
- **files** (``sources.mailchimp.dir``): the CSV audience export and API-shaped email activity.

``raw/mailchimp/members/dt=D`` is a full snapshot; ``raw/mailchimp/email_activity/dt=D`` holds
one row per (campaign, recipient) and readers keep each pair's latest partition.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from c360.config import MailchimpSourceSettings
from c360.contracts.cutoff import cutoff
from c360.ingest.report import TableReport
from c360.lake import Lake
from c360.sources import mailchimp_export

SOURCE = "mailchimp"


def _from_api(settings: MailchimpSourceSettings, day: dt.date) -> dict[str, Callable[[], pa.Table]]:
    from c360.sources.mailchimp_api import MailchimpClient

    end = cutoff(day).replace(tzinfo=dt.UTC)
    since = end - dt.timedelta(days=settings.activity_window_days)

    def activity() -> pa.Table:
        with MailchimpClient(settings) as client:
            sent = [
                c["id"]
                for c in client.campaigns(since=since)
                if c.get("send_time") and _parse(c["send_time"]) < end
            ]
            return client.email_activity(sent)

    def members() -> pa.Table:
        with MailchimpClient(settings) as client:
            return client.members()

    return {"members": members, "email_activity": activity}


def _parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _from_files(settings: MailchimpSourceSettings) -> dict[str, Callable[[], pa.Table]]:
    folder = Path(settings.dir)
    return {
        "members": lambda: mailchimp_export.read_members_export(folder),
        "email_activity": lambda: mailchimp_export.read_email_activity(folder),
    }


def ingest_mailchimp(
    settings: MailchimpSourceSettings, lake: Lake, day: dt.date
) -> list[TableReport]:
    readers = _from_api(settings, day) if settings.api_key else _from_files(settings)
    reports = []
    for table, read in readers.items():
        started = time.perf_counter()
        manifest = lake.write_partition(SOURCE, table, day, read())
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
