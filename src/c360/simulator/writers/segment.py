"""Clickstream as Segment messages (Spec v2 e-commerce events), one JSON line per message.

Lines are built a whole day at a time with the vectorised helpers of
:mod:`c360.simulator.text`; the messages of a day are ordered by ``timestamp`` (and sessions end
before midnight, so the file is in event-time order overall).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from c360.simulator import text, vocab
from c360.simulator.behaviour import Sessions, anon_ids
from c360.simulator.carts import SEARCH_TERMS, Visits
from c360.simulator.orders import FREE_SHIPPING_CENTS, SHIPPING_CENTS, Orders
from c360.simulator.params import CURRENCY, SITE
from c360.simulator.rand import keyed_hash
from c360.simulator.timeline import STATIC_PAGES, TRACK_EVENTS, Kind, Timeline, gather
from c360.simulator.world import I64, Catalog, EmailVariant, People

LIBRARY = '"library":{"name":"analytics.js","version":"npm:next-1.70.0"}'
# (path, title, page name) of the fixed pages, by page id (== Kind value for page kinds)
STATIC = (
    ("/", "ShopSmart | Online Shop", "Home"),
    ("/account/signup", "Create your account | ShopSmart", "Sign Up"),
    ("/account/login", "Log in | ShopSmart", "Login"),
    ("/search", "Search | ShopSmart", "Search"),
    ("/products", "Products | ShopSmart", "Product"),
    ("/cart", "Your cart | ShopSmart", "Cart"),
    ("/checkout", "Checkout | ShopSmart", "Checkout"),
    ("/checkout/confirmation", "Thank you for your order | ShopSmart", "Order Confirmation"),
)


SLICE_EVENTS = 50_000  # messages formatted at once: bounds memory at any scale


@dataclass
class _Day:
    """Per-day values every slice of the day's messages looks up by session."""

    sessions: Sessions
    visits: Visits
    timeline: Timeline
    anon: Any
    who: Any
    device_context: Any
    cart_token: Any
    cart: dict[str, Any]


def _head(kind: int) -> str:
    if kind < STATIC_PAGES:
        return f'"type":"page","name":"{STATIC[kind][2]}",'
    if kind == Kind.ALIAS:
        return '"type":"alias",'
    if kind == Kind.IDENTIFY:
        return '"type":"identify",'
    return f'"type":"track","event":"{TRACK_EVENTS[Kind(kind)]}",'


class SegmentFormatter:
    """Turns a simulated day into Segment message lines."""

    def __init__(self, seed: int, people: People, catalog: Catalog, slots: int) -> None:
        self.seed = seed
        self.people = people
        self.catalog = catalog
        self.slots = slots
        heads = [
            _head(k) if k < STATIC_PAGES or k in (10, 11) or k >= 20 else "" for k in range(26)
        ]
        self.heads = text.words(heads, np.arange(26))
        # page ids: fixed pages, product pages, search result pages
        paths, titles, searches, urls = [], [], [], []
        for path, title, _ in STATIC:
            paths.append(path)
            titles.append(title)
            searches.append("")
            urls.append(SITE + path)
        for name, slug in zip(catalog.name, catalog.slug, strict=True):
            paths.append(f"/products/{slug}")
            titles.append(f"{name} | ShopSmart")
            searches.append("")
            urls.append(f"{SITE}/products/{slug}")
        for term in SEARCH_TERMS:
            query = "?q=" + term.replace(" ", "+")
            paths.append("/search")
            titles.append(f"Search results for {term} | ShopSmart")
            searches.append(query)
            urls.append(f"{SITE}/search{query}")
        self.page_fragment = text.words(
            [
                f'"path":"{p}","search":"{s}","title":"{t}","url":"{u}"'
                for p, s, t, u in zip(paths, searches, titles, urls, strict=True)
            ],
            np.arange(len(paths)),
        )
        self.referrer_urls = text.words(
            urls + list(vocab.EXTERNAL_REFERRERS), np.arange(len(urls) + 6)
        )
        self.n_pages = len(urls)
        self.terms = text.words(SEARCH_TERMS, np.arange(len(SEARCH_TERMS)))
        cats = [vocab.CATEGORIES[c][0] for c in catalog.category.tolist()]
        prices = text.money(catalog.price_cents).to_pylist()
        self.product_fragment = text.words(
            [
                f'"product_id":"{i + 1}","sku":"{sku}","category":"{cat}",'
                f'"name":"{name}","price":{price}'
                for i, (sku, cat, name, price) in enumerate(
                    zip(catalog.sku, cats, catalog.name, prices, strict=True)
                )
            ],
            np.arange(catalog.n),
        )
        self.product_url = text.words(
            urls[STATIC_PAGES : STATIC_PAGES + catalog.n], np.arange(catalog.n)
        )
        self.user_agents = text.words(vocab.USER_AGENTS, np.arange(len(vocab.USER_AGENTS)))

    def _referrers(self, codes: I64) -> Any:
        index = np.where(codes >= 0, codes, self.n_pages + (-1 - codes))
        return text.take(self.referrer_urls, index)

    def day(
        self,
        rng: np.random.Generator,
        sessions: Sessions,
        visits: Visits,
        timeline: Timeline,
        orders: Orders,
    ) -> Iterator[tuple[memoryview, int]]:
        """The day's messages as JSON lines in event-time order, in slices of bounded size."""
        tl = timeline
        rows = np.flatnonzero(sessions.tracked[tl.session])
        order = np.lexsort((rows, tl.ts_ms[rows]))
        rows = rows[order]
        if rows.shape[0] == 0:
            return
        m = sessions.n
        # per session: ids, device, cart
        codes = (sessions.person * self.slots + sessions.slot) << 16 | sessions.gen
        high, low = anon_ids(self.seed, codes)
        anon = text.arrow(text.uuids_from_hashes(high, low))
        device = keyed_hash(self.seed, 15, sessions.person * self.slots + sessions.slot)
        ua = text.take(
            self.user_agents, (device % np.uint64(len(vocab.USER_AGENTS))).astype(np.int64)
        )
        ip = text.ipv4(keyed_hash(self.seed, 14, codes))
        cart_token = text.arrow(
            text.hex_from_hashes(
                rng.integers(0, 2**63 - 1, m, dtype=np.int64).astype(np.uint64), 16
            )
        )
        # who and which device, per session: events pick the variant with or without userId
        user = text.ints(sessions.customer_id)
        who = pa.concat_arrays(
            [
                text.join('"anonymousId":"', anon, '",'),
                text.join('"anonymousId":"', anon, '","userId":"', user, '",'),
            ]
        )
        day = _Day(
            sessions=sessions,
            visits=visits,
            timeline=tl,
            anon=anon,
            who=who,
            device_context=text.join('"ip":"', ip, '","userAgent":"', ua, '"'),
            cart_token=cart_token,
            cart=self._carts(sessions, visits, orders)
            if sessions.buy.any() or visits.checkout.any()
            else {},
        )
        for start in range(0, rows.shape[0], SLICE_EVENTS):
            part = rows[start : start + SLICE_EVENTS]
            yield self._lines(rng, day, part), int(part.shape[0])

    def _lines(self, rng: np.random.Generator, day: _Day, rows: I64) -> memoryview:
        tl = day.timeline
        n = rows.shape[0]
        session = tl.session[rows]
        kind = tl.kind[rows].astype(np.int64)
        message_id = text.arrow(text.uuids(rng, n))
        stamp = text.arrow(text.timestamps(tl.ts_ms[rows]))
        context_page = text.take(self.page_fragment, tl.page[rows])
        referrer = self._referrers(tl.referrer[rows])
        tail = self._tails(day, rows, kind, session, referrer)
        m = day.sessions.n
        lines = text.join(
            '{"messageId":"', message_id, '",', text.take(self.heads, kind),
            text.take(day.who, session + m * tl.has_user[rows]),
            '"timestamp":"', stamp, '","context":{', text.take(day.device_context, session),
            ',"page":{', context_page, ',"referrer":"', referrer, '"},', LIBRARY, "}", tail, "}\n",
        )  # fmt: skip
        return text.concatenated(lines)

    def _tails(self, day: _Day, rows: I64, kind: I64, session: I64, referrer: Any) -> Any:
        """The type-specific end of each message: properties, traits or previousId."""
        tl, visits, cart_token, cart = day.timeline, day.visits, day.cart_token, day.cart
        groups: list[tuple[I64, Any]] = []

        def add(mask: Any, build: Any) -> None:
            idx = np.flatnonzero(mask)
            if idx.shape[0]:
                groups.append((idx, build(idx)))

        page_frag = self.page_fragment
        add(
            kind < STATIC_PAGES,
            lambda i: text.join(
                ',"properties":{', text.take(page_frag, tl.page[rows[i]]),
                ',"referrer":"', referrer.take(i), '"}',
            ),
        )  # fmt: skip
        add(
            kind == Kind.ALIAS,
            lambda i: text.join(',"previousId":"', text.take(day.anon, session[i]), '"'),
        )
        add(kind == Kind.IDENTIFY, lambda i: self._traits(day.sessions.person[session[i]]))
        add(
            kind == Kind.PRODUCTS_SEARCHED,
            lambda i: text.join(
                ',"properties":{"query":"',
                text.take(self.terms, gather(visits.search_term, tl.search[rows[i]])),
                '"}',
            ),
        )
        product = gather(visits.product, tl.visit[rows])
        add(
            kind == Kind.PRODUCT_VIEWED,
            lambda i: text.join(
                ',"properties":{', text.take(self.product_fragment, product[i]),
                ',"currency":"', CURRENCY,
                '","url":"', text.take(self.product_url, product[i]), '"}',
            ),
        )  # fmt: skip
        quantity = gather(visits.quantity, tl.visit[rows])
        add(
            (kind == Kind.PRODUCT_ADDED) | (kind == Kind.PRODUCT_REMOVED),
            lambda i: text.join(
                ',"properties":{"cart_id":"', text.take(cart_token, session[i]), '",',
                text.take(self.product_fragment, product[i]),
                ',"quantity":', text.ints(quantity[i]), ',"currency":"', CURRENCY, '"}',
            ),
        )  # fmt: skip

        def of(key: str, i: I64) -> Any:
            return text.take(cart[key], session[i])

        def money(i: I64) -> Any:
            return text.join(
                ',"subtotal":', of("subtotal", i), ',"revenue":', of("subtotal", i),
                ',"shipping":', of("shipping", i), ',"currency":"', CURRENCY,
                '","products":[', of("products", i), "]}",
            )  # fmt: skip

        add(
            kind == Kind.CHECKOUT_STARTED,
            lambda i: text.join(
                ',"properties":{"checkout_id":"', text.take(cart_token, session[i]), '"',
                of("order_part", i), ',"value":', of("subtotal", i), money(i),
            ),
        )  # fmt: skip
        add(
            kind == Kind.ORDER_COMPLETED,
            lambda i: text.join(
                ',"properties":{"checkout_id":"', text.take(cart_token, session[i]),
                '","order_id":"', of("order_id", i),
                '","affiliation":"ShopSmart Web","total":', of("total", i), money(i),
            ),
        )  # fmt: skip
        return text.scatter(groups, rows.shape[0])

    def _carts(self, sessions: Sessions, visits: Visits, orders: Orders) -> dict[str, Any]:
        """Per session: the cart's products JSON, money and (for buyers) the order id."""
        m = sessions.n
        lines = visits.cart_lines()
        owner = visits.session[lines]
        product = visits.product[lines]
        quantity = visits.quantity[lines]
        price = self.catalog.price_cents[product]
        counts = np.bincount(owner, minlength=m)
        items = text.join(
            "{", text.take(self.product_fragment, product), ',"quantity":', text.ints(quantity), "}"
        )
        subtotal = np.bincount(owner, weights=quantity * price, minlength=m).astype(np.int64)
        shipping = np.where(subtotal >= FREE_SHIPPING_CENTS, 0, SHIPPING_CENTS)
        order_id = np.zeros(m, dtype=np.int64)
        order_id[orders.session] = orders.order_id
        shipping[orders.session] = orders.shipping
        total = subtotal + shipping
        ids = text.ints(order_id)
        return {
            "products": text.group_join(items, counts, ","),
            "subtotal": text.money(subtotal),
            "shipping": text.money(shipping),
            "total": text.money(total),
            "order_id": ids,
            "order_part": text.pick(order_id > 0, text.join(',"order_id":"', ids, '"'), ""),
        }

    def _traits(self, person: I64) -> Any:
        people = self.people
        emails = people.emails(person, EmailVariant.ACCOUNT)
        firsts = people.first_names(person)
        lasts = people.last_names(person)
        created = text.to_str(text.timestamps(people.created_s[person] * 1000))
        return text.words(
            [
                f',"traits":{{"email":"{e}","firstName":"{f}","lastName":"{la}","createdAt":"{c}"}}'
                for e, f, la, c in zip(emails, firsts, lasts, created, strict=True)
            ],
            np.arange(person.shape[0]),
        )
