"""Mailchimp files: the CSV audience export and API-v3-shaped email activity (JSON lines).

The raw zone keeps the source's shape: every value a string as exported, column names
snake-cased ("Email Address" -> email_address); typing happens in the batch layer.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from c360.contracts.lake import MAILCHIMP_ACTIVITY_SCHEMA
from c360.errors import DataError

MEMBERS_EXPORT = "members_export.csv"
EMAIL_ACTIVITY = "email_activity.jsonl"


def snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


_WITHOUT = "a shop without Mailchimp leaves it out of sources.enabled"


def read_members_export(folder: Path) -> pa.Table:
    path = folder / MEMBERS_EXPORT
    if not path.is_file():
        raise DataError(
            f"Mailchimp export not found: {path} (set sources.mailchimp.dir; {_WITHOUT})"
        )
    with path.open("rb") as handle:
        header = pacsv.read_csv(handle, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema
    names = [snake_case(n) for n in header.names]
    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
    )


def read_email_activity(folder: Path) -> pa.Table:
    path = folder / EMAIL_ACTIVITY
    if not path.is_file():
        raise DataError(
            f"Mailchimp email activity not found: {path} (set sources.mailchimp.dir; {_WITHOUT})"
        )
    return pajson.read_json(
        path,
        parse_options=pajson.ParseOptions(
            explicit_schema=MAILCHIMP_ACTIVITY_SCHEMA, unexpected_field_behavior="ignore"
        ),
    )
