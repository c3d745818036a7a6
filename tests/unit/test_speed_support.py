"""The pure support-state updates and the worker's state cache, on hand-made events."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable

import pytest

from c360.contracts.serving import realtime_support
from c360.contracts.times import epoch_ms
from c360.contracts.zendesk import SupportEvent
from c360.pipeline.stream_worker import source_of
from c360.speed.cache import StateCache
from c360.speed.support import (
    DEDUP_WINDOW,
    MAX_CLOSED_TICKETS,
    MAX_TIMELINE_EVENTS,
    SupportState,
    empty_support_state,
    support_key,
    update_support,
)
from c360.stores.realtime import written_columns

T0 = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)
_ids = itertools.count()


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def ticket(
    kind: str, minutes: float, ticket_id: str = "t1", status: str | None = None, eid: str = ""
) -> SupportEvent:
    return SupportEvent(
        eid or f"e{next(_ids)}", f"ticket.{kind}", at(minutes), "361", ticket_id, status
    )


def fold(events: Iterable[SupportEvent], state: SupportState | None = None) -> SupportState:
    state = state or empty_support_state(("zendesk_user_id", "361"))
    for event in events:
        state = update_support(state, event)
    return state


def opened(state: SupportState) -> tuple[int, tuple[tuple[str, str], ...]]:
    return state["open_ticket_count"], tuple(
        sorted((t, s) for t, (s, _) in state["tickets"].items())
    )


def test_created_opens_and_solved_or_closed_closes() -> None:
    state = fold([ticket("created", 0, "t1", "NEW"), ticket("created", 1, "t2")])
    assert opened(state) == (2, (("t1", "NEW"), ("t2", "NEW")))  # no status: NEW
    state = fold([ticket("status_changed", 2, "t1", "OPEN")], state)
    state = fold([ticket("status_changed", 3, "t2", "PENDING")], state)
    assert opened(state) == (2, (("t1", "OPEN"), ("t2", "PENDING")))
    state = fold([ticket("status_changed", 4, "t1", "SOLVED")], state)
    assert opened(state) == (1, (("t1", "SOLVED"), ("t2", "PENDING")))
    state = fold([ticket("status_changed", 5, "t2", "CLOSED")], state)
    assert opened(state) == (0, (("t1", "SOLVED"), ("t2", "CLOSED")))
    state = fold([ticket("status_changed", 6, "t1", "OPEN")], state)  # the requester replied
    assert opened(state) == (1, (("t1", "OPEN"), ("t2", "CLOSED")))
    assert (state["events_total"], state["last_event_at"]) == (7, at(6))


def test_deleting_a_ticket_closes_it_and_other_events_only_count() -> None:
    state = fold([ticket("created", 0), ticket("comment_added", 1, status="SOLVED")])
    assert opened(state) == (1, (("t1", "NEW"),))  # a comment's detail.status does not count
    state = fold([ticket("soft_deleted", 2)], state)
    assert opened(state) == (0, (("t1", "DELETED"),))
    user = SupportEvent("u1", "user.created", at(3), "361", None, None)
    state = update_support(state, user)
    assert (state["events_total"], state["last_event_at"]) == (4, at(3))
    no_status = update_support(state, ticket("status_changed", 4, status=None))
    assert opened(no_status) == opened(state)


def test_event_time_decides_whatever_the_arrival_order() -> None:
    events = [
        ticket("created", 0, "t1"),
        ticket("status_changed", 5, "t1", "OPEN"),
        ticket("status_changed", 9, "t1", "SOLVED"),
        ticket("created", 3, "t2"),
        ticket("status_changed", 4, "t2", "OPEN"),
    ]
    results = {
        (opened(s), s["last_event_at"], s["events_total"])
        for s in (fold(order) for order in itertools.permutations(events))
    }
    assert results == {((1, (("t1", "SOLVED"), ("t2", "OPEN"))), at(9), 5)}


def test_a_same_time_tie_goes_to_the_later_arrival_and_duplicates_are_dropped() -> None:
    state = fold(
        [
            ticket("status_changed", 1, "t1", "OPEN", eid="a"),
            ticket("status_changed", 1, "t1", "SOLVED", eid="b"),
        ]
    )
    assert opened(state) == (0, (("t1", "SOLVED"),))
    again = update_support(state, ticket("status_changed", 1, "t1", "OPEN", eid="a"))
    assert again is state  # a re-delivery of "a" cannot reopen the ticket


def test_the_input_is_never_changed_and_the_windows_are_bounded() -> None:
    state = fold([ticket("created", i, f"t{i}") for i in range(MAX_CLOSED_TICKETS + 5)])
    before = (dict(state["tickets"]), state["recent_event_ids"], state["open_ticket_count"])
    closed = fold([ticket("status_changed", 100 + i, f"t{i}", "SOLVED") for i in range(25)], state)
    assert (dict(state["tickets"]), state["recent_event_ids"], state["open_ticket_count"]) == (
        before
    )
    assert closed["open_ticket_count"] == 0
    assert len(closed["tickets"]) == MAX_CLOSED_TICKETS  # the newest closed ones are kept
    assert sorted(closed["tickets"]) == sorted(f"t{i}" for i in range(5, 25))
    assert closed["tickets"]["t24"] == ("SOLVED", epoch_ms(at(124)))
    assert len(closed["recent_event_ids"]) == DEDUP_WINDOW


def test_ticket_events_are_kept_for_the_timeline_in_time_order_and_bounded() -> None:
    user = SupportEvent("u1", "user.updated", at(0), "361", None, None)
    state = fold(
        [
            ticket("created", 10, eid="a", status="NEW"),
            ticket("status_changed", 30, eid="b", status="SOLVED"),
            ticket("comment_added", 20, eid="c", status="OPEN"),  # late: goes before b
            ticket("comment_added", 20, eid="d"),  # a tie: after the earlier arrival
            user,  # not a ticket event
        ]
    )
    assert state["recent_ticket_events"] == (
        (epoch_ms(at(10)), "a", "ticket.created", "t1", "NEW"),
        (epoch_ms(at(20)), "c", "ticket.comment_added", "t1", None),  # sets no status
        (epoch_ms(at(20)), "d", "ticket.comment_added", "t1", None),
        (epoch_ms(at(30)), "b", "ticket.status_changed", "t1", "SOLVED"),
    )
    many = fold([ticket("comment_added", i, eid=f"x{i}") for i in range(MAX_TIMELINE_EVENTS + 7)])
    kept = many["recent_ticket_events"]
    assert [e[1] for e in kept] == [f"x{i}" for i in range(7, MAX_TIMELINE_EVENTS + 7)]
    again = update_support(many, ticket("comment_added", 0, eid="x3"))  # older than all kept
    assert again["recent_ticket_events"] == kept


def test_the_state_matches_the_realtime_support_table() -> None:
    assert set(SupportState.__annotations__) == {c.name for c in written_columns(realtime_support)}
    assert support_key(ticket("created", 0)) == ("zendesk_user_id", "361")


@pytest.mark.parametrize(
    ("topic", "source"),
    [
        ("support", "support"),
        ("support-eu", "support"),
        ("support.v2", "support"),
        ("supportive", "clickstream"),
        ("clickstream", "clickstream"),
        ("clickstream-1a2b", "clickstream"),
    ],
)
def test_each_topic_has_its_decoder(topic: str, source: str) -> None:
    assert source_of(topic) == source


def test_the_state_cache_is_bounded_and_evicts_the_least_recently_written() -> None:
    cache: StateCache[int] = StateCache(limit=10)
    cache.put({("k", str(i)): i for i in range(10)})
    cache.put({("k", "0"): 100})  # rewritten: now the youngest
    cache.put({("k", "new"): 1})  # over the limit: the oldest (and a tenth more) go
    assert len(cache) == 9
    assert cache.get(("k", "1")) is None and cache.get(("k", "2")) is None
    assert cache.get(("k", "0")) == 100
    assert cache.missing([("k", "0"), ("k", "1")]) == [("k", "1")]
    cache.clear()
    assert len(cache) == 0
    empty: StateCache[int] = StateCache(limit=0)
    empty.put({("k", "x"): 1})
    assert len(empty) == 0
