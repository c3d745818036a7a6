"""``c360 identity explain <person_id>``: why these records are one person.

Read back from what the identity step wrote for a day (:mod:`c360.pipeline.identity`): the person's
records and attributes, every link between them (the shared identifier of a deterministic link;
match weight, probability and per-field contributions of a Splink link), the links the guards
refused, evidence values they ignored, and the person's merge/split history over all days. A
retired id is followed to the person that absorbed it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from c360.contracts.identity import SOURCE, ZONE
from c360.errors import C360Error
from c360.lake import Lake

SHOWN_RECORDS = 40  # the text form lists this many records; --json has all


class UnknownPerson(C360Error):
    """No person with that id (live or retired) in the identity step's output."""


@dataclass(frozen=True)
class Explanation:
    day: dt.date
    person_id: str
    asked_for: str  # the id asked for (a retired id differs from person_id)
    records: list[dict[str, Any]]
    links: list[dict[str, Any]]
    refused: list[dict[str, Any]]
    ignored: list[dict[str, Any]]
    history: list[dict[str, Any]]
    # Records of other persons carrying an ignored email (a shared mailbox): the conflict.
    shared_with: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "day": self.day.isoformat()}

    def text(self) -> str:
        lines = [f"person {self.person_id} as of {self.day}: {len(self.records)} records"]
        if self.asked_for != self.person_id:
            lines.insert(0, f"{self.asked_for} was retired; it redirects to {self.person_id}")
        lines.append("records:")
        for record in self.records[:SHOWN_RECORDS]:
            attributes = ", ".join(
                f"{k}={v}"
                for k, v in record.items()
                if v is not None and k not in ("record_key", "source", "record_type", "record_id")
            )
            lines.append(f"  {record['record_key']}  {attributes}")
        if len(self.records) > SHOWN_RECORDS:
            lines.append(f"  … and {len(self.records) - SHOWN_RECORDS} more (--json lists all)")
        lines.append("links:")
        lines.extend(f"  {_link_text(link)}" for link in self.links[:SHOWN_RECORDS])
        if len(self.links) > SHOWN_RECORDS:
            lines.append(f"  … and {len(self.links) - SHOWN_RECORDS} more")
        for link in self.refused:
            lines.append(
                f"refused: {link['left_key']} — {link['right_key']} "
                f"(weight {link['match_weight']:.1f}): {link['reason']}"
            )
        for value in self.ignored:
            lines.append(
                f"ignored evidence: {value['id_type']}={value['id_value']} ({value['reason']})"
            )
            for other in self.shared_with:
                if other["email_key"] == value["id_value"]:
                    lines.append(f"  also on {_other_text(other)}")
        for event in self.history:
            lines.append(
                f"history {event['dt']}: {event['event']} {event['person_id']} / "
                f"{event['other_person_id']}: {event['reason']}"
            )
        return "\n".join(lines)


def _other_text(record: dict[str, Any]) -> str:
    who = " ".join(str(record[k]) for k in ("first_name", "last_name") if record[k])
    born = f", born {record['birth_date']}" if record["birth_date"] else ""
    return f"{record['record_key']} ({who or 'no name'}{born}) of person {record['person_id']}"


def _link_text(link: dict[str, Any]) -> str:
    ends = f"{link['left_key']} — {link['right_key']}"
    if link["kind"] == "deterministic":
        return f"{ends}  shared {link['evidence']}"
    contributions = json.loads(link["contributions"] or "{}")
    fields = ", ".join(f"{name} {weight:+.1f}" for name, weight in contributions.items())
    return (
        f"{ends}  splink weight {link['match_weight']:.1f} "
        f"(p={link['match_probability']:.4f}): {fields}"
    )


def _read(lake: Lake, table: str, day: dt.date) -> pa.Table:
    return lake.read_partition(SOURCE, table, day, ZONE)


def _rows(table: pa.Table, mask: pa.ChunkedArray | pa.Array) -> list[dict[str, Any]]:
    return list(table.filter(mask).to_pylist())


def _live_id(lake: Lake, day: dt.date, person_id: str) -> str:
    redirects = _read(lake, "person_redirect", day)
    hit = redirects.filter(pc.equal(redirects["retired_id"], person_id))
    return str(hit["person_id"][0]) if hit.num_rows else person_id


def explain(lake: Lake, person_id: str, day: dt.date) -> Explanation:
    """The explanation of ``person_id`` as of the identity run of ``day``."""
    live = _live_id(lake, day, person_id)
    assignment = _read(lake, "assignment", day)
    keys = assignment.filter(pc.equal(assignment["person_id"], live))["record_key"]
    if len(keys) == 0:
        raise UnknownPerson(
            f"no person {person_id!r} in the identity run of {day} "
            "(neither live nor retired); `c360 identity eval` or the Profile API list ids"
        )
    records = _read(lake, "records", day)
    links = _read(lake, "links", day)
    refused = _read(lake, "refused", day)
    ignored = _read(lake, "ignored", day)
    identifiers = _identifier_values(records, keys)
    history = []
    for past in lake.partitions(SOURCE, "person_history", ZONE):
        if past <= day:
            events = _read(lake, "person_history", past)
            mentions = pc.or_(
                pc.is_in(events["person_id"], pa.array([live, person_id])),
                pc.is_in(events["other_person_id"], pa.array([live, person_id])),
            )
            history.extend(_rows(events, mentions))
    return Explanation(
        day=day,
        person_id=live,
        asked_for=person_id,
        records=_rows(records, pc.is_in(records["record_key"], keys)),
        links=_rows(
            links,
            pc.or_(pc.is_in(links["left_key"], keys), pc.is_in(links["right_key"], keys)),
        ),
        refused=_rows(
            refused,
            pc.or_(pc.is_in(refused["left_key"], keys), pc.is_in(refused["right_key"], keys)),
        ),
        ignored=_rows(ignored, pc.is_in(ignored["id_value"], identifiers)),
        history=[{**event, "dt": str(event["dt"])} for event in history],
        shared_with=_shared_with(records, assignment, keys, ignored),
    )


def _shared_with(
    records: pa.Table, assignment: pa.Table, keys: pa.ChunkedArray, ignored: pa.Table
) -> list[dict[str, Any]]:
    """Other persons' records that carry an email key the guards ignored on this person's."""
    mine = records.filter(pc.is_in(records["record_key"], keys))
    emails = ignored.filter(pc.equal(ignored["id_type"], "email"))["id_value"]
    shared = pc.filter(mine["email_key"], pc.is_in(mine["email_key"], emails))
    others = records.filter(
        pc.and_(
            pc.is_in(records["email_key"], shared),
            pc.invert(pc.is_in(records["record_key"], keys)),
        )
    ).select(["record_key", "email_key", "first_name", "last_name", "birth_date"])
    others = others.join(assignment.select(["record_key", "person_id"]), "record_key")
    rows = others.sort_by([("email_key", "ascending"), ("record_key", "ascending")]).to_pylist()
    return [{**row, "birth_date": _text(row["birth_date"])} for row in rows[:SHOWN_RECORDS]]


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _identifier_values(records: pa.Table, keys: pa.ChunkedArray) -> pa.Array:
    mine = records.filter(pc.is_in(records["record_key"], keys))
    values = [
        *mine["email_key"].to_pylist(),
        *mine["email"].to_pylist(),
        *[str(v) for v in mine["customer_id"].to_pylist() if v is not None],
        *mine["record_key"].to_pylist(),  # a record the guards set aside is named whole
        *[key.partition(":")[2] for key in mine["record_key"].to_pylist()],
    ]
    return pa.array(sorted({v for v in values if v is not None}), pa.string())
