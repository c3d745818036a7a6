"""Ground truth, kept apart from the sources: who every record and identifier belongs to.

* ``persons.parquet``: one row per person with the latent traits (kind, churn date, engagement)
  and ``household_key`` (the household head's person_key, for both of its people; null if none);
* ``identifiers.parquet``: every identifier value exactly as it appears in a source
  (``customer_id``, ``email``, ``anonymous_id``, ``zendesk_user_id``, ``mailchimp_id``, ``phone``)
  with its ``person_key`` — one row per person using it: a household's shared mailbox or home
  phone has a row for each of its two people; ``mailchimp_id`` holds both the member id (md5 of
  the lower-cased address, as in the API and in email activity's ``email_id``) and the EUID
  (``unique_email_id``);
* ``records.parquet``: every order, customer, ticket, Zendesk user, member and email-activity row
  (``source``, ``record_type``, ``record_id``) with its ``person_key``. Clickstream messages are
  attributed through their ``anonymous_id``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from c360.simulator import text
from c360.simulator.behaviour import Devices, anon_ids
from c360.simulator.email import Newsletter
from c360.simulator.support import Support
from c360.simulator.world import I64, NEVER, Calendar, EmailVariant, Kind, People, PhoneStyle
from c360.simulator.writers.files import AtomicFile, Outputs

RECORDS = pa.schema(
    [("source", pa.string()), ("record_type", pa.string()), ("record_id", pa.string()),
     ("person_key", pa.int64())]
)  # fmt: skip
IDENTIFIERS = pa.schema(
    [("id_type", pa.string()), ("id_value", pa.string()), ("person_key", pa.int64())]
)
PERSONS = pa.schema(
    [("person_key", pa.int64()), ("kind", pa.string()), ("customer_id", pa.int64()),
     ("is_guest_only", pa.bool_()), ("is_newsletter_only", pa.bool_()), ("churns", pa.bool_()),
     ("churn_date", pa.date32()), ("signup_date", pa.date32()), ("first_active_date", pa.date32()),
     ("engagement", pa.float64()), ("first_name", pa.string()), ("last_name", pa.string()),
     ("email", pa.string()), ("marketing_opt_in", pa.bool_()), ("household_key", pa.int64())]
)  # fmt: skip
ROW_GROUP = 1_000_000
_CHUNK = 100_000


class _ParquetStream:
    """Appends batches to one Parquet file through an atomic temporary file."""

    def __init__(self, target: AtomicFile, schema: pa.Schema) -> None:
        self.target = target
        self.schema = schema
        self.writer = pq.ParquetWriter(target.file, schema, compression="zstd")
        target.on_abort.append(self.writer.close)
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.rows = 0

    def add(self, columns: list[Any]) -> None:
        batch = pa.record_batch(columns, schema=self.schema)
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        self.rows += batch.num_rows
        if self.pending_rows >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending, self.schema))
            self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


class Truth:
    def __init__(
        self, outputs: Outputs, folder: str | Path, people: People, calendar: Calendar
    ) -> None:
        self.folder = Path(folder)
        self.people = people
        self.calendar = calendar
        self.outputs = outputs
        self.email_used = np.zeros(people.n, dtype=np.uint8)
        self.phone_used = np.zeros(people.n, dtype=np.uint8)
        self.records = _ParquetStream(outputs.file(self.folder / "records.parquet"), RECORDS)

    # --- marking what the sources showed ---------------------------------------------------

    def email(self, persons: I64, variants: Any) -> None:
        variants = np.broadcast_to(np.asarray(variants, dtype=np.uint8), persons.shape)
        # an account address without a capital letter is the primary address itself
        same = (variants == EmailVariant.ACCOUNT) & ~self.people.capitalised[persons]
        variants = np.where(same, EmailVariant.PRIMARY, variants).astype(np.uint8)
        np.bitwise_or.at(self.email_used, persons, (1 << variants).astype(np.uint8))

    def phone(self, persons: I64, styles: Any) -> None:
        styles = np.broadcast_to(np.asarray(styles, dtype=np.int64), persons.shape)
        ok = (styles >= 0) & (self.people.phone[persons] != 0)
        np.bitwise_or.at(self.phone_used, persons[ok], (1 << styles[ok]).astype(np.uint8))

    def record(self, source: str, record_type: str, ids: Any, persons: I64) -> None:
        n = persons.shape[0]
        if n == 0:
            return
        values = ids if isinstance(ids, pa.Array) else pa.array(ids, type=pa.string())
        self.records.add(
            [pa.array([source] * n, pa.string()), pa.array([record_type] * n, pa.string()),
             values, pa.array(self.people.person_key[persons])]
        )  # fmt: skip

    # --- the end of the run ---------------------------------------------------------------------

    def finish(self, seed: int, devices: Devices, support: Support, newsletter: Newsletter) -> None:
        people = self.people
        users, user_persons = support.used_users()
        self.record("zendesk", "user", [str(u) for u in users.tolist()], user_persons)
        self.record("mailchimp", "member", newsletter.ids, newsletter.person)
        self.records.close()

        ident = _ParquetStream(self.outputs.file(self.folder / "identifiers.parquet"), IDENTIFIERS)
        keys = people.person_key

        def add(id_type: str, values: Any, persons: I64) -> None:
            if persons.shape[0]:
                values = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
                ident.add([pa.array([id_type] * persons.shape[0], pa.string()), values,
                           pa.array(keys[persons])])  # fmt: skip

        customers = np.arange(people.customers, dtype=np.int64)
        add("customer_id", text.ints(customers + 1), customers)
        for start in range(0, people.n, _CHUNK):
            chunk = np.arange(start, min(start + _CHUNK, people.n), dtype=np.int64)
            # (value, person) once each: a household's mailbox or phone belongs to both of them
            values: dict[tuple[str, int], None] = {}
            for variant in EmailVariant:
                who = chunk[(self.email_used[chunk] >> variant) & 1 == 1]
                for value, person in zip(people.emails(who, variant), who.tolist(), strict=True):
                    values[value, person] = None
            add("email", [v for v, _ in values], np.asarray([p for _, p in values], np.int64))
            phones: dict[tuple[str, int], None] = {}
            for style in PhoneStyle:
                who = chunk[(self.phone_used[chunk] >> style) & 1 == 1]
                for phone, person in zip(people.phones(who, style), who.tolist(), strict=True):
                    if phone is not None:
                        phones[phone, person] = None
            add("phone", [v for v, _ in phones], np.asarray([p for _, p in phones], np.int64))
        codes = np.unique(devices.seen_codes())
        high, low = anon_ids(seed, codes)
        slots = devices.gen.shape[1]
        add("anonymous_id", text.arrow(text.uuids_from_hashes(high, low)), (codes >> 16) // slots)
        add("zendesk_user_id", [str(u) for u in users.tolist()], user_persons)
        # the API's member id (md5 of the address, also email activity's email_id) and the
        # export's EUID (the API's unique_email_id): both identify the member
        add("mailchimp_id", newsletter.ids, newsletter.person)
        add("mailchimp_id", newsletter.unique_email_id, newsletter.person)
        ident.close()
        self._persons()

    def _persons(self) -> None:
        people, cal = self.people, self.calendar
        start = cal.start_day
        out = _ParquetStream(self.outputs.file(self.folder / "persons.parquet"), PERSONS)
        for first in range(0, people.n, _CHUNK):
            idx = np.arange(first, min(first + _CHUNK, people.n), dtype=np.int64)
            kind = people.kind[idx]
            customer = kind == Kind.CUSTOMER
            churn = people.churn_day[idx]
            churned = churn != NEVER
            out.add(
                [
                    pa.array(people.person_key[idx]),
                    pa.array([_KINDS[k] for k in kind.tolist()], pa.string()),
                    pa.array(np.where(customer, idx + 1, 0), mask=~customer),
                    pa.array(kind == Kind.GUEST_ONLY),
                    pa.array(kind == Kind.NEWSLETTER_ONLY),
                    pa.array(churn < cal.days),
                    _dates(np.where(churned, start + churn, 0), ~churned),
                    _dates(np.maximum(people.created_s[idx], 0) // 86_400, ~customer),
                    _dates(start + people.first_day[idx], None),
                    pa.array(people.engagement[idx]),
                    pa.array(people.first_names(idx), pa.string()),
                    pa.array(people.last_names(idx), pa.string()),
                    pa.array(people.emails(idx, EmailVariant.PRIMARY), pa.string()),
                    pa.array(people.opt_in[idx]),
                    _household_keys(people, idx),
                ]
            )
        out.close()


_KINDS = ("customer", "guest_only", "newsletter_only")


def _household_keys(people: People, idx: I64) -> pa.Array:
    """The person_key of each person's household head (the head's own key too); null if none."""
    head = people.household[idx]
    return pa.array(people.person_key[np.maximum(head, 0)], pa.int64(), mask=head < 0)


def _dates(days: Any, missing: Any) -> Any:
    return pa.array(np.asarray(days).astype("datetime64[D]"), pa.date32(), mask=missing)
