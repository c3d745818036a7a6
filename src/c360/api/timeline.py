"""A person's timeline: recent events across sources, newest first, paginated by time.

``GET /v1/profiles/{person_id}/timeline?before=…&limit=…&types=…`` — where the events come from
(the batch before the serving batch's cutoff, the speed layer since) and what is kept how long
is :mod:`c360.stores.timeline`'s docstring.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from c360.api import cursors
from c360.api.audit import ReadAudit
from c360.api.auth import request_key, requires
from c360.api.errors import ApiError, responses
from c360.api.openapi import comma_separated
from c360.config import TimelineSettings
from c360.contracts.times import epoch_us, naive_from_epoch_us, naive_utc
from c360.stores import ServingStore
from c360.stores.timeline import KINDS, TimelineKey

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_CURSOR = "timeline"


class TimelineEvent(BaseModel):
    """One event: what, when, from where, and a short summary for people. The typed fields
    hold what the kind has (null otherwise)."""

    id: str = Field(description="16 hex digits; with `at`, the event's place in the order")
    at: dt.datetime = Field(description="When it happened (UTC); a session: its start")
    kind: Literal["order", "ticket", "email", "web"]
    source: str = Field(description="orders, zendesk, mailchimp or clickstream")
    type: str = Field(
        description="order; ticket.created, ticket.status_changed, …; open, click, bounce, …; "
        "session, cart"
    )
    summary: str = Field(description="One line for people, e.g. 'Order 1042: 2 items, …'")
    reference: str | None = Field(None, description="The order, ticket or campaign id")
    status: str | None = Field(None, description="Order status; the ticket status the event set")
    amount: float | None = Field(None, description="Order total; cart value")
    currency: str | None = None
    quantity: int | None = Field(
        None, description="Order: items; cart: items; session: products added to the cart"
    )
    title: str | None = Field(None, description="Order: its first product; email: clicked URL")
    ended_at: dt.datetime | None = Field(None, description="A session's last event")
    page_views: int | None = Field(None, description="A session's page views")
    product_views: int | None = Field(None, description="A session's product views")


class Timeline(BaseModel):
    person_id: str
    redirected_from: str | None = Field(
        None, description="The retired person id asked for, when it was merged into this person"
    )
    events: list[TimelineEvent]
    next_before: str | None = Field(
        description="Pass as `before` for the next (older) page; null on the last."
    )


def _before(value: str | None) -> TimelineKey | None:
    """An ISO-8601 time (events strictly before it) or a cursor a previous page returned."""
    if value is None:
        return None
    if value[:1].isdigit():
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(
                422, "invalid_request", "before: an ISO-8601 time or a previous page's cursor"
            ) from None
        return TimelineKey(naive_utc(moment), "")
    at_us, event_id = cursors.decode("before", _CURSOR, value, (int, str))
    try:
        at = naive_from_epoch_us(at_us)
    except OverflowError:
        raise ApiError(422, "invalid_request", "before: not a time") from None
    return TimelineKey(at, event_id)


# Read from the request (a list in one parameter, as the profile's ``fields``), declared here.
_TYPES = comma_separated("types", KINDS, "Comma-separated kinds of event to show (all by default)")


_ROUTE = "/v1/profiles/{person_id}/timeline"


def _kinds(value: str | None) -> tuple[str, ...]:
    if value is None:
        return KINDS
    asked = {kind.strip() for kind in value.split(",") if kind.strip()}
    unknown = asked - set(KINDS)
    if unknown or not asked:
        raise ApiError(
            422, "invalid_request", f"types: a comma-separated list of {', '.join(KINDS)}"
        )
    return tuple(kind for kind in KINDS if kind in asked)


def timeline_router(
    serving: ServingStore, settings: TimelineSettings, audit: ReadAudit | None = None
) -> APIRouter:
    router = APIRouter(tags=["profiles"], dependencies=[requires("profiles:read")])

    @router.get(
        _ROUTE,
        response_model=Timeline,
        responses=responses(404, 422),
        openapi_extra={"parameters": [_TYPES]},
    )
    def timeline(
        request: Request,
        person_id: str,
        before: Annotated[
            str | None,
            Query(
                max_length=1024,
                description="Events strictly before this: an ISO-8601 time, or the "
                "`next_before` of the previous page",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    ) -> dict[str, Any]:
        """The person's recent orders, tickets, email activity and web sessions, newest first
        (the last `timeline.days` days). A retired person id answers with the survivor's."""
        page = serving.timeline(
            person_id,
            limit=limit,
            days=settings.days,
            before=_before(before),
            kinds=_kinds(request.query_params.get("types")),
        )
        if page is None:
            raise ApiError(404, "not_found", "no person with that id")
        if audit is not None:
            audit.record(request_key(request).key_id, page.person_id, _ROUTE)
        next_before = None
        if page.next_key is not None:
            key = page.next_key
            next_before = cursors.encode(_CURSOR, epoch_us(key.at), key.event_id)
        return {
            "person_id": page.person_id,
            "redirected_from": page.redirected_from,
            "events": page.events,
            "next_before": next_before,
        }

    return router
