"""Erasure of one person everywhere: ``c360 forget`` and ``DELETE /v1/persons/{id}``.

The person is resolved through identity in the serving store
(:meth:`~c360.stores.ServingStore.erasure_subject`: every identifier, retired ids, stitched
cookies, order ids). Then, in this order, so that a crash anywhere leaves a state a second run
finishes (the serving store, which resolves the person, goes last):

1. their identifiers' keyed hashes join the **suppression list**: from now on the collector,
   the Zendesk webhook and ingestion drop what carries one;
2. the **event log**: each topic's records of the person are redacted in place (local log:
   the affected partition files rewritten aside and renamed) or tombstoned (Kafka);
3. the **lake**: every partition of every zone holding their rows is rewritten through the
   lake's commit protocol (:meth:`~c360.lake.Lake.rewrite_partition`); only those partitions;
4. the **serving store**: one transaction deletes their rows from every registered table
   (:data:`c360.stores.erasure.PERSONAL_TABLES`) and keeps the **receipt**.

The receipt lists every store touched with row and file counts, the identifiers erased as
HMAC-SHA256 hashes (keyed by the store's erasure salt), a timestamp and who asked; never a
value.

**Concurrency.** An erasure holds the **batch lock** (:mod:`c360.pipeline.batch_lock`) from
start to end, waiting for a running daily batch to finish: no batch step (an archive that read
the log before step 2, a publish of features computed before step 3) runs meanwhile. The
stream worker is not paused: it drops what names a suppressed identifier, and a micro-batch
computed before step 1 either commits before step 4's deletes (which the speed layer's
commits cannot interleave with) or is recomputed against the new list
(:mod:`c360.pipeline.stream_worker`, *Erasure*).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import logging
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c360.config import Settings
from c360.contracts.lake import ARCHIVE_LIFTED
from c360.errors import NotFoundError
from c360.ingest.archive import SOURCE as ARCHIVE_SOURCE
from c360.lake import Lake
from c360.logs import EventLog, RecordMatch, open_configured
from c360.pipeline.batch_lock import batch_lock, new_owner
from c360.privacy.identifiers import ID_TYPES, ORDER, PERSON, Subject
from c360.privacy.suppression import RAW_COLUMNS
from c360.speed.features import USER_ID
from c360.stores import ServingStore

logger = logging.getLogger(__name__)

TOPICS = ("clickstream", "support")
# How long an erasure waits for a running daily batch (it holds the batch lock) by default.
LOCK_WAIT = dt.timedelta(minutes=30)
# Columns that hold an identifier of one type in any lake table, by their name.
GENERIC_COLUMNS: Mapping[str, str] = {
    "person_id": PERSON,
    "retired_id": PERSON,
    "batch_person_id": PERSON,
    "customer_id": "customer_id",
    "anonymous_id": "anonymous_id",
    "email": "email",
    "email_address": "email",
    "zendesk_user_id": "zendesk_user_id",
    "mailchimp_id": "mailchimp_id",
    "euid": "mailchimp_id",
    "phone": "phone",
}
# Text columns holding a whole record (a quarantined row, a raw payload): searched for the
# person's distinctive identifiers (a message keyed by another cookie may name their email).
DOCUMENT_COLUMNS = ("record", "payload", "merge_fields")
# List columns of what a document names, lifted from it at ingestion (the event archive's
# ``identifiers``, c360.privacy.documents): matched on their values, and where a table has one
# its payload is not read — the archive's payloads were nearly all of an erasure's time.
LIFTED_COLUMNS: Mapping[str, str] = {ARCHIVE_LIFTED: "payload"}
ID_PAIR = ("id_type", "id_value")


@dataclass
class LakeErasure:
    files: int = 0
    rows: int = 0
    partitions: list[str] = field(default_factory=list)


def _columns(zone: str, source: str, table: str, names: list[str]) -> dict[str, str]:
    """The identifier columns of a lake table: the raw zone's declared ones, then by name."""
    columns = {n: t for n, t in GENERIC_COLUMNS.items() if n in names}
    if zone == "raw":
        columns.update(RAW_COLUMNS.get((source, table), {}))
    return {n: t for n, t in columns.items() if n in names}


def _documents(names: list[str], lifted: list[str]) -> list[str]:
    """The document columns to search: those whose identifiers are not lifted already."""
    done = {LIFTED_COLUMNS[column] for column in lifted}
    return [n for n in DOCUMENT_COLUMNS if n in names and n not in done]


def _lifted(zone: str, source: str, names: list[str]) -> list[str]:
    """The lifted columns a partition has: the event archive's (``raw/events/<topic>``)."""
    if (zone, source) != ("raw", ARCHIVE_SOURCE):
        return []
    return [n for n in LIFTED_COLUMNS if n in names]


def _as_text(values: pa.ChunkedArray) -> pa.ChunkedArray:
    return values if values.type == pa.string() else pc.cast(values, pa.string())


def _in(values: pa.ChunkedArray, wanted: list[str], lower: bool) -> pa.ChunkedArray:
    text = pc.utf8_trim_whitespace(_as_text(values))
    if lower:
        text = pc.utf8_lower(text)
    return pc.fill_null(pc.is_in(text, value_set=pa.array(wanted, pa.string())), False)


def _any_in(values: pa.ChunkedArray, wanted: list[str]) -> pa.Array:
    """True for each row whose list holds one of ``wanted`` (lower-cased values)."""
    flat = values.combine_chunks() if values.num_chunks else pa.array([], values.type)
    hits = pc.fill_null(pc.is_in(pc.list_flatten(flat), value_set=pa.array(wanted)), False)
    mask = np.zeros(len(flat), dtype=bool)
    mask[pc.list_parent_indices(flat).to_numpy()[hits.to_numpy(zero_copy_only=False)]] = True
    return pa.array(mask)


def row_mask(
    rows: pa.Table,
    columns: Mapping[str, str],
    documents: list[str],
    subject: Subject,
    lifted: Sequence[str] = (),
) -> pa.ChunkedArray | pa.Array:
    """True for each row that holds one of the subject's identifiers."""
    mask: pa.ChunkedArray | pa.Array = pa.array([False] * rows.num_rows, pa.bool_())
    for column, id_type in columns.items():
        wanted = subject.of(id_type)
        if wanted:
            lower = id_type == "email"
            mask = pc.or_(
                mask, _in(rows[column], [w.lower() for w in wanted] if lower else wanted, lower)
            )
    if all(name in rows.column_names for name in ID_PAIR):
        for id_type in (*GENERIC_COLUMNS.values(), USER_ID):
            wanted = subject.of("customer_id" if id_type == USER_ID else id_type)
            if wanted:
                of_type = pc.fill_null(pc.equal(_as_text(rows["id_type"]), id_type), False)
                mask = pc.or_(mask, pc.and_(of_type, _in(rows["id_value"], wanted, False)))
    tokens = subject.strong_tokens()
    if tokens and lifted:  # what documents name, lifted at ingestion: whole values
        lowered = sorted({token.lower() for token in tokens})
        for column in lifted:
            mask = pc.or_(mask, _any_in(rows[column], lowered))
    if tokens and documents:  # one pass per column: an alternation of the tokens (RE2: linear)
        pattern = "|".join(re.escape(token) for token in tokens)
        for column in documents:
            found = pc.match_substring_regex(_as_text(rows[column]), pattern, ignore_case=True)
            mask = pc.or_(mask, pc.fill_null(found, False))
    return mask


def erase_lake(lake: Lake, subject: Subject, threads: int = 2) -> LakeErasure:
    """Rewrite every lake partition that holds the subject's rows, without them, ``threads``
    partitions at a time (Parquet reads and Arrow kernels release the GIL). Order lines go
    last: they are found by the order ids of the person's orders seen on the way."""
    done = LakeErasure()
    tables = lake.tables()
    by_order = [t for t in tables if _only_orders(*t)]
    for group in ([t for t in tables if t not in by_order], by_order):
        known = copy.deepcopy(subject)  # read by the threads while order ids are collected
        work = [(*t, day) for t in group for day in lake.partitions(t[1], t[2], t[0])]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = pool.map(functools.partial(_erase_partition, lake, known), work)
            for result in results:
                if result is not None:
                    done.files += 1
                    done.rows += result.rows
                    done.partitions.append(result.partition)
                    subject.add_all((ORDER, o) for o in result.order_ids)
    return done


def _only_orders(zone: str, source: str, table: str) -> bool:
    declared = RAW_COLUMNS.get((source, table), {}) if zone == "raw" else {}
    return bool(declared) and set(declared.values()) == {ORDER}


@dataclass(frozen=True)
class _Rewritten:
    partition: str
    rows: int
    order_ids: list[Any]


def _erase_partition(
    lake: Lake, subject: Subject, where: tuple[str, str, str, dt.date]
) -> _Rewritten | None:
    """Probe a partition's identifier columns; rewrite it without the matching rows."""
    zone, source, table, day = where
    names = list(lake.manifest(source, table, day, zone)["schema"])
    columns = _columns(zone, source, table, names)
    lifted = _lifted(zone, source, names)
    documents = _documents(names, lifted)
    pair = [n for n in ID_PAIR if n in names] if len(set(ID_PAIR) & set(names)) == 2 else []
    if not (columns or documents or lifted or pair):
        return None
    probe_columns = sorted({*columns, *documents, *lifted, *pair} | ({"order_id"} & set(names)))
    probe = lake.read_partition(source, table, day, zone, columns=probe_columns)
    mask = row_mask(probe, columns, documents, subject, lifted)
    matched = int(pc.sum(mask).as_py() or 0)
    if not matched:
        return None
    orders = []
    if "order_id" in probe.column_names and not _only_orders(zone, source, table):
        orders = probe["order_id"].filter(mask).to_pylist()
    rows = lake.read_partition(source, table, day, zone)
    lake.rewrite_partition(source, table, day, rows.filter(pc.invert(mask)), zone)
    return _Rewritten(f"{zone}/{source}/{table}/dt={day.isoformat()}", matched, orders)


def record_match(subject: Subject) -> RecordMatch:
    """Whether a log record is the subject's: keyed by one of their identifiers, or a payload
    naming a distinctive one (or their customer id as ``userId``)."""
    keys = {v.encode() for v in subject.of("anonymous_id", "customer_id", "zendesk_user_id")}
    tokens = [t.lower().encode() for t in subject.strong_tokens()]
    tokens += [f'"userid":"{c}"'.encode() for c in subject.of("customer_id")]

    def match(key: bytes, value: bytes) -> bool:
        if key in keys:
            return True
        lowered = value.lower()
        return any(token in lowered for token in tokens)

    return match


def erase_log(log: EventLog, subject: Subject) -> list[dict[str, Any]]:
    match = record_match(subject)
    return [asdict(log.erase(topic, match)) for topic in TOPICS]


def forget(
    settings: Settings,
    store: ServingStore,
    id_type: str,
    value: str,
    *,
    requested_by: str,
    log: EventLog | None = None,
    lock_wait: dt.timedelta = LOCK_WAIT,
) -> dict[str, Any]:
    """Erase the person an identifier names everywhere; the receipt (module docstring).
    A person id the store does not know is :class:`NotFoundError`. Holds the batch lock,
    waiting up to ``lock_wait`` for a running batch to finish (then
    :class:`~c360.pipeline.batch_lock.BatchLocked`)."""
    ttl = dt.timedelta(seconds=settings.batch.lock_ttl_seconds)
    with batch_lock(store, ttl, wait=lock_wait, owner=f"{new_owner()}:erasure"):
        return _forget(settings, store, id_type, value, requested_by, log)


def _forget(
    settings: Settings,
    store: ServingStore,
    id_type: str,
    value: str,
    requested_by: str,
    log: EventLog | None,
) -> dict[str, Any]:
    started = time.perf_counter()
    subject = store.erasure_subject(id_type, value)
    if id_type == PERSON and not subject.of(*ID_TYPES):  # every known person has one
        raise NotFoundError(f"no person {value!r} to erase")
    erasure_id = str(uuid.uuid4())
    salt = store.erasure_salt()
    hashes = subject.hashes(salt)
    store.suppress(hashes, erasure_id)
    if log is None:
        with open_configured(settings.log) as opened:
            logged = erase_log(opened, subject)
    else:
        logged = erase_log(log, subject)
    threads = settings.compute.threads or os.cpu_count() or 1
    lake = erase_lake(Lake(settings.lake.url), subject, threads=threads)
    hashes = subject.hashes(salt)  # with the lake's order ids
    store.suppress(hashes, erasure_id)
    receipt = {
        "erasure_id": erasure_id,
        "erased_at": dt.datetime.now(dt.UTC).isoformat(),
        "requested_by": requested_by,
        "identifiers": hashes,
        "stores": {
            "log": {"topics": logged},
            "lake": {"files": lake.files, "rows": lake.rows, "partitions": lake.partitions},
        },
    }
    kept = store.erase(subject, receipt)
    kept["seconds"] = round(time.perf_counter() - started, 3)
    logger.info("erasure %s done in %.1f s", erasure_id, kept["seconds"])
    return kept
