"""Pure real-time support features from the ``support`` topic: ``update_support(state, event)``.

State is kept per Zendesk user (``id_type = 'zendesk_user_id'``, the requester of ticket
events), resolved to a person at read time through the identity map like the clickstream's.
No I/O, no clock; the input state is never changed (see :mod:`c360.speed.features`).

**Tickets.** ``tickets`` maps each ticket id to ``(status, event time in epoch ms)``: the status
the newest event about that ticket set, by event time (ties go to the later arrival, so a late
event never reopens a ticket a newer one closed). Events that set a status:
``ticket.created`` (``detail.status``, ``NEW`` when absent), ``ticket.status_changed``
(``event.current``) and ``ticket.soft_deleted`` / ``ticket.permanently_deleted`` (``DELETED``).
Other ticket and user events count in ``events_total`` only. A ticket is open unless its status
is one of :data:`CLOSED_STATUSES`; ``open_ticket_count`` counts the open ones and the profile's
``has_open_support_ticket`` is ``open_ticket_count > 0``.

Open tickets are all kept; of the closed ones only the :data:`MAX_CLOSED_TICKETS` newest, to
recognise their late events. Only tickets whose events the speed layer has seen are known: a
ticket opened before the stream started and still open is not counted until an event about it
arrives (the batch's ``open_support_tickets`` covers it as of the cutoff).

**Recent ticket events for the timeline.** ``recent_ticket_events`` holds the user's newest
:data:`MAX_TIMELINE_EVENTS` ticket events (by event time; ties keep the later arrival), oldest
first, each ``(time in epoch ms, event id, type, ticket id, status the event set or None)``.
Support events are few: the list costs the speed layer nothing measurable.

**Duplicates**: an event whose ``id`` is among the user's last :data:`DEDUP_WINDOW` event ids is
dropped (the very same state comes back); a status update is idempotent anyway, this only keeps
``events_total`` exact and a re-delivered old event from winning a same-second tie.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import TypedDict

from c360.contracts.times import epoch_ms
from c360.contracts.zendesk import SupportEvent
from c360.speed.features import StateKey

ZENDESK_USER_ID = "zendesk_user_id"
DEDUP_WINDOW = 32
MAX_CLOSED_TICKETS = 20
CLOSED_STATUSES = frozenset({"SOLVED", "CLOSED", "DELETED"})
MAX_STATUS = 16
MAX_TIMELINE_EVENTS = 20  # realtime_support.recent_ticket_events
MAX_EVENT_ID = 64  # characters of an event id, type or ticket id kept in recent_ticket_events
_DELETED = frozenset({"ticket.soft_deleted", "ticket.permanently_deleted"})

Ticket = tuple[str, int]  # (status, event time in epoch ms)
# A timeline entry: (epoch ms, event id, type, ticket id, status the event set)
TicketEvent = tuple[int, str, str, str, str | None]
NO_TICKETS: Mapping[str, Ticket] = MappingProxyType({})


class SupportState(TypedDict):
    """One ``realtime_support`` row. Times are aware UTC datetimes."""

    id_type: str
    id_value: str
    open_ticket_count: int
    last_event_at: dt.datetime | None
    events_total: int
    tickets: Mapping[str, Ticket]
    recent_event_ids: tuple[str, ...]
    recent_ticket_events: tuple[TicketEvent, ...]


def support_key(event: SupportEvent) -> StateKey:
    return ZENDESK_USER_ID, event.user_id


def empty_support_state(key: StateKey) -> SupportState:
    return {
        "id_type": key[0],
        "id_value": key[1],
        "open_ticket_count": 0,
        "last_event_at": None,
        "events_total": 0,
        "tickets": NO_TICKETS,
        "recent_event_ids": (),
        "recent_ticket_events": (),
    }


def status_set_by(event: SupportEvent) -> str | None:
    """The status an event gives its ticket, or None if it does not set one."""
    if event.ticket_id is None:
        return None
    if event.kind == "ticket.created":
        return (event.status or "NEW")[:MAX_STATUS]
    if event.kind == "ticket.status_changed":
        return event.status[:MAX_STATUS] if event.status else None
    if event.kind in _DELETED:
        return "DELETED"
    return None


def is_open(status: str) -> bool:
    return status not in CLOSED_STATUSES


def update_support(state: SupportState, event: SupportEvent) -> SupportState:
    """The state after ``event`` (see the module docstring for the rules)."""
    if event.event_id in state["recent_event_ids"]:
        return state
    new = state.copy()
    new["events_total"] = state["events_total"] + 1
    new["recent_event_ids"] = (*state["recent_event_ids"], event.event_id)[-DEDUP_WINDOW:]
    last = state["last_event_at"]
    if last is None or event.time > last:
        new["last_event_at"] = event.time
    status = status_set_by(event)
    if event.ticket_id is not None:
        new["recent_ticket_events"] = _recent(state["recent_ticket_events"], event, status)
    if status is not None and event.ticket_id is not None:
        at = epoch_ms(event.time)
        known = state["tickets"].get(event.ticket_id)
        if known is None or at >= known[1]:
            tickets = dict(state["tickets"])
            tickets[event.ticket_id] = (status, at)
            new["tickets"] = _pruned(tickets)
            new["open_ticket_count"] = sum(is_open(s) for s, _ in new["tickets"].values())
    return new


def _recent(
    recent: tuple[TicketEvent, ...], event: SupportEvent, status: str | None
) -> tuple[TicketEvent, ...]:
    """``recent`` with a ticket event added in time order (after equal times), newest kept."""
    at = epoch_ms(event.time)
    ticket = (event.ticket_id or "")[:MAX_EVENT_ID]
    entry = (at, event.event_id[:MAX_EVENT_ID], event.kind[:MAX_EVENT_ID], ticket, status)
    position = len(recent)
    while position and recent[position - 1][0] > at:
        position -= 1
    return (*recent[:position], entry, *recent[position:])[-MAX_TIMELINE_EVENTS:]


def _pruned(tickets: dict[str, Ticket]) -> dict[str, Ticket]:
    closed = [(at, ticket) for ticket, (s, at) in tickets.items() if not is_open(s)]
    if len(closed) <= MAX_CLOSED_TICKETS:
        return tickets
    for _, ticket in sorted(closed)[: len(closed) - MAX_CLOSED_TICKETS]:
        del tickets[ticket]
    return tickets
