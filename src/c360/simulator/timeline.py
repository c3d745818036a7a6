"""The event sequence of every session and when each event happens.

A session is a fixed script of blocks, each optional::

    home page · sign-up (page, alias, identify) or login (page, identify) ·
    searches (Products Searched, search page) · per product (page, Product Viewed,
    Product Added, Product Removed) · checkout (cart page, Checkout Started, checkout page) ·
    purchase (Order Completed, confirmation page)

Gaps between events are short (< 10 minutes); a session lasts at most ``SESSION_MAX_S`` and
starts inside its time-of-day window (see :mod:`c360.simulator.behaviour`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from c360.simulator import vocab
from c360.simulator.behaviour import SESSION_MAX_S, Sessions, start_times
from c360.simulator.carts import Visits
from c360.simulator.world import I64, U8, Bools, People


class Kind(IntEnum):
    PAGE_HOME = 0
    PAGE_SIGNUP = 1
    PAGE_LOGIN = 2
    PAGE_SEARCH = 3
    PAGE_PRODUCT = 4
    PAGE_CART = 5
    PAGE_CHECKOUT = 6
    PAGE_CONFIRMATION = 7
    ALIAS = 10
    IDENTIFY = 11
    PRODUCTS_SEARCHED = 20
    PRODUCT_VIEWED = 21
    PRODUCT_ADDED = 22
    PRODUCT_REMOVED = 23
    CHECKOUT_STARTED = 24
    ORDER_COMPLETED = 25


TRACK_EVENTS = {
    Kind.PRODUCTS_SEARCHED: "Products Searched",
    Kind.PRODUCT_VIEWED: "Product Viewed",
    Kind.PRODUCT_ADDED: "Product Added",
    Kind.PRODUCT_REMOVED: "Product Removed",
    Kind.CHECKOUT_STARTED: "Checkout Started",
    Kind.ORDER_COMPLETED: "Order Completed",
}
STATIC_PAGES = 8  # page ids 0..7 are the fixed pages (kind value == page id)
MAX_GAP_S = 600.0  # longest pause inside a session (sessions split at 30 minutes)


def page_ids(products: int) -> tuple[int, int]:
    """Where product pages and search-result pages start in the page-id space."""
    return STATIC_PAGES, STATIC_PAGES + products


@dataclass
class Timeline:
    """The day's events of all sessions, sorted by session then script position."""

    session: I64
    kind: U8
    visit: I64  # row in Visits for product events, else -1
    search: I64  # row of the search for search events, else -1
    rel_ms: I64  # milliseconds since the session start
    page: I64  # page id of the page the event happened on
    referrer: I64  # that page's referrer: a page id, or -1 - k for vocab.EXTERNAL_REFERRERS[k]
    has_user: Bools  # the device is logged in at this event (userId is set)
    start_ms: I64  # per session: absolute start (epoch ms)

    @property
    def ts_ms(self) -> I64:
        return self.start_ms[self.session] + self.rel_ms

    def first_of(self, kind: Kind) -> I64:
        """Per session: the row of its first event of ``kind`` (-1 if none)."""
        out = np.full(self.start_ms.shape[0], -1, dtype=np.int64)
        rows = np.flatnonzero(self.kind == kind)[::-1]
        out[self.session[rows]] = rows
        return out


def gather(values: I64, index: I64) -> I64:
    """``values[index]`` where ``index >= 0``, else 0 (also when ``values`` is empty)."""
    if values.shape[0] == 0:
        return np.zeros(index.shape[0], dtype=np.int64)
    return np.where(index >= 0, values[np.maximum(index, 0)], 0)


def _block(session: I64, key: int | I64, kind: int, visit: I64 | None = None) -> tuple[I64, ...]:
    n = session.shape[0]
    return (
        session,
        np.broadcast_to(np.asarray(key, dtype=np.int64), (n,)),
        np.full(n, kind, dtype=np.int64),
        np.full(n, -1, dtype=np.int64) if visit is None else visit,
    )


def build_timeline(
    rng: np.random.Generator,
    sessions: Sessions,
    visits: Visits,
    people: People,
    day_start_s: int,
    products: int,
) -> Timeline:
    m = sessions.n
    every = np.arange(m, dtype=np.int64)
    signup = np.flatnonzero(sessions.signup)
    login = np.flatnonzero(sessions.login)
    checkout = np.flatnonzero(visits.checkout)
    bought = np.flatnonzero(sessions.buy)
    s_rows = np.arange(visits.search_session.shape[0], dtype=np.int64)
    s_idx = s_rows - np.searchsorted(visits.search_session, visits.search_session)
    v_rows = np.arange(visits.session.shape[0], dtype=np.int64)
    v_key = 1000 + 4 * visits.position
    cart = np.flatnonzero(visits.in_cart)
    gone = np.flatnonzero(visits.removed)
    blocks = [
        _block(every, 0, Kind.PAGE_HOME),
        _block(signup, 100, Kind.PAGE_SIGNUP),
        _block(signup, 101, Kind.ALIAS),
        _block(signup, 102, Kind.IDENTIFY),
        _block(login, 100, Kind.PAGE_LOGIN),
        _block(login, 102, Kind.IDENTIFY),
        _block(visits.search_session, 200 + 2 * s_idx, Kind.PRODUCTS_SEARCHED, s_rows),
        _block(visits.search_session, 201 + 2 * s_idx, Kind.PAGE_SEARCH, s_rows),
        _block(visits.session, v_key, Kind.PAGE_PRODUCT, v_rows),
        _block(visits.session, v_key + 1, Kind.PRODUCT_VIEWED, v_rows),
        _block(visits.session[cart], v_key[cart] + 2, Kind.PRODUCT_ADDED, cart),
        _block(visits.session[gone], v_key[gone] + 3, Kind.PRODUCT_REMOVED, gone),
        _block(checkout, 9000, Kind.PAGE_CART),
        _block(checkout, 9001, Kind.CHECKOUT_STARTED),
        _block(checkout, 9002, Kind.PAGE_CHECKOUT),
        _block(bought, 9100, Kind.ORDER_COMPLETED),
        _block(bought, 9101, Kind.PAGE_CONFIRMATION),
    ]
    session, key, kind, ref = (np.concatenate(parts) for parts in zip(*blocks, strict=True))
    order = np.lexsort((key, session))
    session, key, kind, ref = session[order], key[order], kind[order], ref[order]
    n = session.shape[0]
    is_search = (kind == Kind.PRODUCTS_SEARCHED) | (kind == Kind.PAGE_SEARCH)
    is_product = (kind >= Kind.PRODUCT_VIEWED) & (kind <= Kind.PRODUCT_REMOVED)
    is_product |= kind == Kind.PAGE_PRODUCT
    visit = np.where(is_product, ref, -1)
    search = np.where(is_search, ref, -1)

    # gaps: reading a page takes a while, calls on the same page follow within seconds
    is_page = kind < STATIC_PAGES
    gap = np.where(is_page, 4.0 + rng.exponential(35.0, n), 0.2 + rng.random(n) * 3)
    gap = np.where(kind == Kind.ORDER_COMPLETED, 15.0 + rng.exponential(45.0, n), gap)
    gap = np.minimum(gap, MAX_GAP_S)
    first = np.ones(n, dtype=bool)
    first[1:] = session[1:] != session[:-1]
    gap[first] = 0.0
    starts = np.flatnonzero(first)
    total = np.add.reduceat(gap, starts) if n else np.zeros(0)
    scale = np.minimum(1.0, SESSION_MAX_S / np.maximum(total, 1e-9))
    cum = np.cumsum(gap * scale[session])
    rel_s = cum - cum[starts][session]
    rel_ms = (rel_s * 1000).astype(np.int64)
    duration = total * scale

    # session start: by time of day, except sign-ups, whose alias lands on the account's created_at
    start_s = start_times(rng, sessions.part, duration)
    if signup.shape[0]:
        alias_rows = np.flatnonzero(kind == Kind.ALIAS)
        created_tod = people.created_s[sessions.person[session[alias_rows]]] - day_start_s
        start_s[session[alias_rows]] = created_tod + 0.5 - rel_ms[alias_rows] / 1000.0
    start_ms = (day_start_s + start_s) * 1000
    start_ms_i = np.floor(start_ms).astype(np.int64)

    # pages: the page each event happened on and where that page was reached from
    page_base, search_base = page_ids(products)
    own = np.where(is_page, kind, -1).astype(np.int64)
    own = np.where(kind == Kind.PAGE_PRODUCT, page_base + gather(visits.product, visit), own)
    term = gather(visits.search_term, search)
    own = np.where(kind == Kind.PAGE_SEARCH, search_base + term, own)
    page_rows = np.flatnonzero(is_page)
    current = np.maximum.accumulate(np.where(is_page, np.arange(n), -1)) if n else np.zeros(0, int)
    weights = np.asarray(vocab.EXTERNAL_REFERRER_WEIGHTS)
    external = -1 - rng.choice(weights.shape[0], size=m, p=weights / weights.sum())
    prev_page = np.empty(page_rows.shape[0], dtype=np.int64)
    if page_rows.shape[0]:
        prev_page[1:] = own[page_rows[:-1]]
        prev_same = np.zeros(page_rows.shape[0], dtype=bool)
        prev_same[1:] = session[page_rows[1:]] == session[page_rows[:-1]]
        prev_page = np.where(prev_same, prev_page, external[session[page_rows]])
    page_ref = np.zeros(n, dtype=np.int64)
    page_ref[page_rows] = prev_page
    # Products Searched fires on the page the search was typed into, before the results load
    page = own[current]
    referrer = page_ref[current]

    has_user = sessions.logged_in[session].copy()
    has_user |= sessions.signup[session] & (key >= 101)
    has_user |= sessions.login[session] & (key >= 102)
    return Timeline(
        session=session,
        kind=kind.astype(np.uint8),
        visit=visit,
        search=search,
        rel_ms=rel_ms,
        page=page,
        referrer=referrer,
        has_user=has_user,
        start_ms=start_ms_i,
    )
