"""Segments over the API: define, list, show, preview and delete audiences.

Reading and previewing need ``profiles:read`` (a preview's sample names persons and their
values); creating and deleting need ``segments:write``. A definition that is not one answers
422 ``invalid_definition`` with the message (the nearest field for an unknown one) and the
``position`` of the offending token; a name in use answers 409 ``conflict``. The language is
:mod:`c360.segments.definition`'s.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, Field, field_validator

from c360.api.auth import requires
from c360.api.errors import ApiError, responses
from c360.errors import NotFoundError
from c360.pipeline import activation
from c360.segments import DefinitionError
from c360.segments.definition import MAX_LENGTH
from c360.stores import ServingStore
from c360.stores.segments import MAX_DESCRIPTION, SegmentExists, SegmentNameError

MAX_SAMPLE = 100
DEFAULT_SAMPLE = 10
_NAME = Path(
    pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
    description="The segment's name: lower-case letters, digits, `_` and `-`.",
)


class SegmentIn(BaseModel):
    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="1 to 64 lower-case letters, digits, `_` or `-`.",
        examples=["big-spenders-at-risk"],
    )
    definition: str = Field(
        min_length=1,
        max_length=MAX_LENGTH,
        description="A boolean expression over profile fields: comparisons (`= != < <= > >=`), "
        "`in (…)`, `between … and …`, `is [not] null`, a bool field alone, `and`/`or`/`not`, "
        "parentheses; text, dates and times in quotes.",
        examples=["total_lifetime_spend > 500 and marketing_opt_in"],
    )
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)


class SegmentOut(BaseModel):
    name: str
    definition: str
    description: str | None
    created_at: dt.datetime
    fields: list[str] = Field(description="The profile fields the definition reads.")
    members: int | None = Field(
        description="Current members by the latest daily membership run (null before one, "
        "and for a real-time segment)."
    )
    members_as_of: dt.date | None = Field(
        description="The batch date `members` is as of (null before a daily membership run)."
    )
    live_members: int | None = Field(
        description="A real-time segment's members now, as the speed layer keeps them (null "
        "for a segment over batch fields only)."
    )


class SegmentList(BaseModel):
    segments: list[SegmentOut]


class PreviewIn(BaseModel):
    definition: str = Field(min_length=1, max_length=MAX_LENGTH)
    sample: int = Field(DEFAULT_SAMPLE, ge=0, le=MAX_SAMPLE)

    @field_validator("sample", mode="before")
    @classmethod
    def _no_bool(cls, value: object) -> object:
        if isinstance(value, bool):  # JSON's false is no integer (pydantic would take it as 0)
            raise ValueError("an integer")
        return value


class PreviewOut(BaseModel):
    count: int = Field(description="Persons the definition selects now.")
    sample: list[dict[str, Any]] = Field(
        description="The first of them by person id: `person_id` and the fields read."
    )
    fields: list[str]


def _invalid(exc: DefinitionError) -> ApiError:
    return ApiError(422, "invalid_definition", str(exc), position=exc.position)


def _preview(serving: ServingStore, definition: str, sample: int) -> dict[str, Any]:
    try:
        preview = serving.preview_segment(definition, sample)
    except DefinitionError as exc:
        raise _invalid(exc) from exc
    return {"count": preview.count, "sample": preview.sample, "fields": list(preview.fields)}


def segments_router(serving: ServingStore) -> APIRouter:
    router = APIRouter(tags=["segments"])
    read = [requires("profiles:read")]
    write = [requires("segments:write")]

    @router.get(
        "/v1/segments",
        response_model=SegmentList,
        dependencies=read,
        responses=responses(422, 500, 503),  # 422: an unknown query parameter
    )
    def list_segments() -> dict[str, Any]:
        """Every segment, by name."""
        return {"segments": [s.as_dict() for s in serving.segments()]}

    @router.post(
        "/v1/segments",
        response_model=SegmentOut,
        status_code=201,
        dependencies=write,
        responses=responses(400, 409, 422, 500, 503),
    )
    def create_segment(segment: Annotated[SegmentIn, Body()]) -> dict[str, Any]:
        """Define a segment; the definition is checked against the profile's fields."""
        try:
            made = serving.create_segment(segment.name, segment.definition, segment.description)
        except DefinitionError as exc:
            raise _invalid(exc) from exc
        except SegmentNameError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from exc
        except SegmentExists as exc:
            raise ApiError(409, "conflict", str(exc)) from exc
        return made.as_dict()

    @router.post(
        "/v1/segments/preview",
        response_model=PreviewOut,
        dependencies=read,
        responses=responses(400, 422, 500, 503),
    )
    def preview_definition(body: Annotated[PreviewIn, Body()]) -> dict[str, Any]:
        """Count and sample the persons a definition selects, without saving it."""
        return _preview(serving, body.definition, body.sample)

    @router.get(
        "/v1/segments/{name}",
        response_model=SegmentOut,
        dependencies=read,
        responses=responses(404, 422, 500, 503),
    )
    def show_segment(name: Annotated[str, _NAME]) -> dict[str, Any]:
        """One segment."""
        try:
            return serving.segment(name).as_dict()
        except NotFoundError as exc:
            raise ApiError(404, "not_found", f"no segment {name!r}") from exc

    @router.get(
        "/v1/segments/{name}/preview",
        response_model=PreviewOut,
        dependencies=read,
        responses=responses(404, 422, 500, 503),
    )
    def preview_segment(
        name: Annotated[str, _NAME],
        sample: Annotated[int, Query(ge=0, le=MAX_SAMPLE)] = DEFAULT_SAMPLE,
    ) -> dict[str, Any]:
        """Count and sample a segment's persons as its definition selects them now."""
        try:
            definition = serving.segment(name).definition
        except NotFoundError as exc:
            raise ApiError(404, "not_found", f"no segment {name!r}") from exc
        return _preview(serving, definition, sample)

    @router.get(
        "/v1/segments/{name}/export",
        dependencies=read,
        response_class=Response,
        responses={
            200: {
                "description": "The segment's current members with marketing consent and an "
                "email, one row each (person_id, email, first_name, last_name, entered_on, "
                "marketing_consent_source, marketing_consent_at); `X-C360-Left-Out` counts "
                "the members left out without consent.",
                "content": {
                    media: {"schema": {"type": "string", "format": "binary"}}
                    for media in activation.MEDIA_TYPES.values()
                },
                "headers": {
                    "X-C360-Left-Out": {
                        "description": "Members left out: no marketing consent or no email.",
                        "schema": {"type": "integer"},
                    }
                },
            },
            **responses(404, 422, 500, 503),
        },
    )
    def export_segment(
        name: Annotated[str, _NAME],
        format: Annotated[Literal["csv", "parquet"], Query()] = "csv",
    ) -> Response:
        """A segment's audience as a file: only members with marketing consent."""
        try:
            content, left_out = activation.audience_bytes(serving, name, format)
        except NotFoundError as exc:
            raise ApiError(404, "not_found", f"no segment {name!r}") from exc
        return Response(
            content,
            media_type=activation.MEDIA_TYPES[format],
            headers={
                "Content-Disposition": f'attachment; filename="{name}.{format}"',
                "X-C360-Left-Out": str(left_out),
            },
        )

    @router.delete(
        "/v1/segments/{name}",
        status_code=204,
        response_class=Response,
        dependencies=write,
        responses=responses(404, 422, 500, 503),
    )
    def delete_segment(name: Annotated[str, _NAME]) -> Response:
        """Delete a segment and its membership."""
        if not serving.delete_segment(name):
            raise ApiError(404, "not_found", f"no segment {name!r}")
        return Response(status_code=204)

    return router
