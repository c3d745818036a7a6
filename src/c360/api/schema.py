"""Response models of the Profile API, generated from the feature catalogue.

The OpenAPI document therefore describes every batch feature with its type and meaning, from
the same list the batch SQL and docs/features.md follow. Unknown extra columns (a feature added
to the store before the catalogue) are passed through rather than dropped.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, create_model

from c360.batch.catalogue import CATALOGUE


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


_FIELDS: dict[str, Any] = {
    f.name: (_python_type(f.type) | None, Field(None, description=f"{f.description} ({f.source})"))
    for f in CATALOGUE
    if f.name != "person_id"
}
ProfileFeatures = create_model("ProfileFeatures", __config__=ConfigDict(extra="allow"), **_FIELDS)


class Identifier(BaseModel):
    id_type: str
    id_value: str


class Profile(BaseModel):
    """A unified profile: the golden record, identifiers, and features."""

    person_id: str
    redirected_from: str | None = Field(
        None,
        description="The retired person id asked for, when it was merged into this person "
        "(the request answered with the surviving person); null otherwise.",
    )
    person: dict[str, Any] = Field(description="The golden record.")
    identifiers: list[Identifier]
    profile: ProfileFeatures = Field(
        description="Batch features completed by the speed layer's deltas after the cutoff."
    )
    batch: ProfileFeatures = Field(description="Batch features as published for the batch date.")
    realtime: dict[str, Any] = Field(
        description="Speed-layer state across the person's identifiers."
    )
