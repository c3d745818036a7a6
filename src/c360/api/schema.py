"""Response models of the Profile API, generated from the feature catalogue.

The OpenAPI document therefore describes every batch feature with its type and meaning, from
the same list the batch SQL and docs/features.md follow. Unknown extra columns (a feature added
to the store before the catalogue) are passed through rather than dropped.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, create_model

from c360.batch.catalogue import CATALOGUE
from c360.speed import merge


def _python_type(arrow_type: pa.DataType) -> Any:
    if pa.types.is_integer(arrow_type):
        return int
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return float  # money as a JSON number with two decimals, as stored
    if pa.types.is_boolean(arrow_type):
        return bool
    if pa.types.is_timestamp(arrow_type):
        return dt.datetime
    if pa.types.is_date(arrow_type):
        return dt.date
    return str


_MERGED = {
    merge.Rule.ADD: "plus the speed layer's orders since the cutoff",
    merge.Rule.EARLIEST: "or the date of the first order since the cutoff, if earlier",
    merge.Rule.LATEST: "or the date of the latest order since the cutoff, if later",
    merge.Rule.LATEST_TIME: "or the newest real-time event, if later",
    merge.Rule.AVERAGE: "recomputed with the orders since the cutoff",
    merge.Rule.SHARE: "recomputed with the orders since the cutoff",
    merge.Rule.DAYS_SINCE: "counted to the day of the read",
    merge.Rule.LIVE: "the speed layer's count when it has the person's tickets",
    merge.Rule.AT_LEAST: "at least open_support_tickets",
}


def _described(feature: Any, unified: bool) -> Any:
    text = f"{feature.description} ({feature.source})"
    rule = merge.BY_FEATURE.get(feature.name)
    if unified and rule is not None:
        text += f" Unified: {_MERGED[rule.rule]}."
    return (_python_type(feature.type) | None, Field(None, description=text))


_BATCH: dict[str, Any] = {f.name: _described(f, False) for f in CATALOGUE if f.name != "person_id"}
_UNIFIED: dict[str, Any] = {
    **{f.name: _described(f, True) for f in CATALOGUE if f.name != "person_id"},
    **{
        f.name: (
            _python_type(f.type) | None,
            Field(None, description=f"{f.description} (real time)"),
        )
        for f in merge.REALTIME_FEATURES
    },
}
# The fields ``fields=`` can name: the unified profile's.
PROFILE_FIELDS: tuple[str, ...] = tuple(_UNIFIED)

_OPEN = ConfigDict(extra="allow")  # a feature published before the catalogue knew it passes
BatchFeatures = create_model("BatchFeatures", __config__=_OPEN, **_BATCH)
UnifiedFeatures = create_model("UnifiedFeatures", __config__=_OPEN, **_UNIFIED)


class Identifier(BaseModel):
    id_type: str
    id_value: str


class Provenance(BaseModel):
    layer: Literal["batch", "realtime", "merged"] = Field(
        description="batch: as published for the batch date; realtime: the speed layer's state; "
        "merged: the batch value completed by real-time facts."
    )
    as_of: dt.datetime | None = Field(
        description="batch: the batch cutoff (UTC); realtime and merged: the time of the read."
    )


class Profile(BaseModel):
    """A unified profile: the golden record, identifiers, and features."""

    person_id: str
    redirected_from: str | None = Field(
        None,
        description="The retired person id asked for, when it was merged into this person "
        "(the request answered with the surviving person); null otherwise.",
    )
    person: dict[str, Any] | None = Field(
        None, description="The golden record (left out when `fields` is given)."
    )
    identifiers: list[Identifier] | None = Field(
        None, description="Every identifier of the person (left out when `fields` is given)."
    )
    profile: UnifiedFeatures = Field(
        description="The unified profile: batch features completed by the speed layer's facts "
        "(each field says how), and the real-time features; with `fields`, only those."
    )
    batch: BatchFeatures | None = Field(
        None,
        description="With `explain=true`: the batch features as published for the batch date.",
    )
    realtime: dict[str, Any] | None = Field(
        None,
        description="With `explain=true`: the speed layer's state across the person's identifiers.",
    )
    provenance: dict[str, Provenance] | None = Field(
        None, description="With `explain=true`: per field of `profile`, the layer and its time."
    )
