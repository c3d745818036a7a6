"""What each session looks at and buys: product visits, searches and the cart."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from c360.simulator import vocab
from c360.simulator.behaviour import Sessions
from c360.simulator.world import I64, Bools, Catalog, People

# Search terms: every product noun of every category, in vocabulary order.
SEARCH_TERMS: tuple[str, ...] = tuple(n.lower() for c in vocab.CATEGORIES for n in c[3])
_TERM_START = np.cumsum([0] + [len(c[3]) for c in vocab.CATEGORIES])


@dataclass
class Visits:
    """Product visits (one row per product page seen), grouped by session, by position."""

    session: I64
    product: I64
    position: I64  # 0-based order of the visit inside its session
    in_cart: Bools  # the product was added to the cart
    removed: Bools  # ... and removed again
    quantity: I64
    checkout: Bools  # per session: reached the checkout (buyers always)
    search_session: I64  # one row per search
    search_term: I64

    def cart_lines(self) -> I64:
        """Visit rows that end in the cart (what an order contains), by session and position."""
        return np.flatnonzero(self.in_cart & ~self.removed)


def _within(counts: I64) -> I64:
    """0..count-1 for every run of a repeat by ``counts``."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


def _categories(rng: np.random.Generator, favourite: I64) -> I64:
    weights = np.asarray(vocab.CATEGORY_WEIGHTS)
    other = rng.choice(len(weights), size=favourite.shape[0], p=weights / weights.sum())
    return np.where(rng.random(favourite.shape[0]) < 0.6, favourite, other).astype(np.int64)


def plan_visits(
    rng: np.random.Generator, sessions: Sessions, people: People, catalog: Catalog
) -> Visits:
    m = sessions.n
    buy = sessions.buy
    items = 1 + np.minimum(rng.poisson(0.7, m), 5)
    extra = np.minimum(rng.poisson(0.8, m), 6)
    removed_one = rng.random(m) < 0.1
    views = 1 + np.minimum(rng.poisson(1.5, m), 7)
    adds = np.minimum((rng.random(m) < 0.2) * (1 + (rng.random(m) < 0.3)), views)
    abandoned_checkout = (adds > 0) & (rng.random(m) < 0.35)
    rows = np.where(buy, items + extra + removed_one, views).astype(np.int64)

    session = np.repeat(np.arange(m, dtype=np.int64), rows)
    w = _within(rows)
    in_cart = np.where(
        buy[session], (w < items[session]) | (w >= (items + extra)[session]), w < adds[session]
    )
    removed = buy[session] & (w >= (items + extra)[session])
    favourite = people.favourite[sessions.person[session]].astype(np.int64)
    product = catalog.pick(rng, _categories(rng, favourite))
    qty_draw = rng.random(session.shape[0])
    quantity = np.where(in_cart, 1 + (qty_draw > 0.82) + (qty_draw > 0.95), 1).astype(np.int64)
    # shuffle the visit order inside each session
    order = np.lexsort((rng.random(session.shape[0]), session))
    position = np.empty_like(w)
    position[order] = w

    searches = np.minimum(rng.poisson(0.4, m), 3)
    search_session = np.repeat(np.arange(m, dtype=np.int64), searches)
    s_fav = people.favourite[sessions.person[search_session]].astype(np.int64)
    s_cat = _categories(rng, s_fav)
    sizes = np.diff(_TERM_START)[s_cat]
    term = _TERM_START[s_cat] + (rng.random(s_cat.shape[0]) * sizes).astype(np.int64)

    # sort the visit rows by session then position (cart lines keep that order)
    by_pos = np.lexsort((position, session))
    return Visits(
        session=session[by_pos],
        product=product[by_pos],
        position=position[by_pos],
        in_cart=in_cart[by_pos],
        removed=removed[by_pos],
        quantity=quantity[by_pos],
        checkout=buy | abandoned_checkout,
        search_session=search_session,
        search_term=term.astype(np.int64),
    )
