"""``generate``: simulate the ShopSmart world day by day and write the four sources + truth.

Per simulated day: who is active (behaviour) -> what they look at and buy (carts) -> the event
script and its timing (timeline) -> orders; then every writer appends that day. Everything the
day needs comes from random streams keyed by (seed, purpose, day), so runs are reproducible.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from c360.config import Settings
from c360.contracts.shop_db import ORDER_STATUSES
from c360.simulator import text, vocab
from c360.simulator.behaviour import Devices, activity_factor, plan_sessions, season
from c360.simulator.carts import plan_visits
from c360.simulator.email import Newsletter
from c360.simulator.orders import Orders, build_orders
from c360.simulator.params import CURRENCY, WorldParams
from c360.simulator.rand import Stream, stream
from c360.simulator.support import Support
from c360.simulator.timeline import build_timeline
from c360.simulator.truth import Truth
from c360.simulator.world import (
    Calendar,
    Catalog,
    EmailVariant,
    People,
    PhoneStyle,
    make_catalog,
    make_people,
)
from c360.simulator.writers.files import AtomicFile, GzipLines, Outputs
from c360.simulator.writers.mailchimp import MailchimpFormatter
from c360.simulator.writers.segment import SegmentFormatter
from c360.simulator.writers.shop_db import ShopDb

log = logging.getLogger(__name__)
_CUSTOMER_CHUNK = 20_000


@dataclass(frozen=True)
class GenerateSummary:
    """What a run wrote (counts per source) and how long it took."""

    persons: int
    customers: int
    guests: int  # guest-only persons (they never register)
    products: int
    orders: int
    order_items: int
    clickstream_events: int
    zendesk_events: int
    mailchimp_members: int
    email_activity: int
    seconds: float
    guest_orders: int = 0
    tickets: int = 0
    campaigns: int = 0


def generate(
    settings: Settings, *, replace: bool = False, params: WorldParams | None = None
) -> GenerateSummary:
    """Write the ShopSmart world configured in ``settings.simulator`` to the ``settings.sources``.

    Refuses (:class:`~c360.simulator.writers.shop_db.TargetNotEmptyError`) to write into an orders
    database that already has rows unless ``replace``, in which case its four tables are dropped
    and recreated. Files are replaced atomically once the whole run succeeded.
    """
    started = time.perf_counter()
    db = ShopDb(settings.sources.mysql.url, replace=replace)  # before touching any file
    try:
        with Outputs() as outputs:
            summary = _Run(settings, _with_households(settings, params), db, outputs).run()
            db.close()
            outputs.commit()
    except BaseException:
        db.abort()
        raise
    seconds = round(time.perf_counter() - started, 3)
    log.info("generated the ShopSmart world in %.1f s", seconds)
    return GenerateSummary(**{**summary.__dict__, "seconds": seconds})


def _with_households(settings: Settings, params: WorldParams | None) -> WorldParams:
    """The world's knobs with the households the settings ask for."""
    sim = settings.simulator
    return dataclasses.replace(
        params or WorldParams(),
        shared_email_share=sim.shared_email_share,
        shared_phone_share=sim.shared_phone_share,
    )


@dataclass
class _World:
    """The simulation state and the formatters that carry over from day to day."""

    people: People
    catalog: Catalog
    truth: Truth
    devices: Devices
    support: Support
    newsletter: Newsletter
    segment: SegmentFormatter
    mailchimp: MailchimpFormatter


@dataclass
class _Files:
    clicks: GzipLines
    zendesk: AtomicFile
    activity: AtomicFile


@dataclass
class _Counts:
    orders: int = 0
    items: int = 0
    guest_orders: int = 0
    events: int = 0
    zendesk_events: int = 0
    activity_rows: int = 0


class _Run:
    def __init__(
        self, settings: Settings, params: WorldParams, db: ShopDb, outputs: Outputs
    ) -> None:
        sim = settings.simulator
        self.sources = settings.sources
        self.seed = sim.seed
        self.params = params
        self.calendar = Calendar(sim.start_date, sim.days)
        self.db = db
        self.outputs = outputs
        self.truth_dir = sim.truth_dir
        self.customers = sim.customers
        # SQLite stores DATETIME as text: use the form SQLAlchemy writes (with microseconds)
        self._fraction = 6 if db.datetime_format == "sqlite" else 0

    def _db_times(self, seconds: np.ndarray) -> list[str]:
        stamps = text.timestamps(
            np.asarray(seconds) * 1000, sep=" ", fraction=self._fraction, suffix=""
        )
        return text.to_str(stamps)

    def run(self) -> GenerateSummary:
        p, cal, seed = self.params, self.calendar, self.seed
        people = make_people(seed, self.customers, cal, p)
        catalog = make_catalog(seed, p.products_for(self.customers), cal)
        log.info(
            "simulating %d persons (%d customers) over %d days from %s",
            people.n, people.customers, cal.days, cal.start,
        )  # fmt: skip
        truth = Truth(self.outputs, self.truth_dir, people, cal)
        self._customers(people, truth)
        self._products(catalog)
        newsletter = Newsletter(seed, people, cal, p)
        world = _World(
            people=people,
            catalog=catalog,
            truth=truth,
            devices=Devices.empty(people.n, p.max_devices),
            support=Support(seed, people, cal, p),
            newsletter=newsletter,
            segment=SegmentFormatter(seed, people, catalog, p.max_devices),
            mailchimp=MailchimpFormatter(newsletter),
        )
        mc_dir = Path(self.sources.mailchimp.dir)
        files = _Files(
            clicks=self.outputs.gzip(self.sources.clickstream.path),
            zendesk=self.outputs.file(self.sources.zendesk.path),
            activity=self.outputs.file(mc_dir / "email_activity.jsonl"),
        )
        counts = _Counts()
        for day in range(cal.days):
            self._day(day, world, files, counts)
            if (day + 1) % max(1, cal.days // 10) == 0:
                log.info("day %d/%d: %d orders, %d clickstream events", day + 1, cal.days,
                         counts.orders, counts.events)  # fmt: skip
        tickets = self._finish(world, mc_dir)
        return GenerateSummary(
            persons=people.n,
            customers=people.customers,
            guests=people.guests,
            products=catalog.n,
            orders=counts.orders,
            order_items=counts.items,
            clickstream_events=counts.events,
            zendesk_events=counts.zendesk_events,
            mailchimp_members=newsletter.members,
            email_activity=counts.activity_rows,
            seconds=0.0,
            guest_orders=counts.guest_orders,
            tickets=tickets,
            campaigns=len(newsletter.campaigns),
        )

    def _day(self, day: int, w: _World, files: _Files, counts: _Counts) -> None:
        """Simulate one day and append it to every source."""
        p, cal, seed = self.params, self.calendar, self.seed
        factor = activity_factor(w.people, day, p)
        season_factor = season(cal, day, p)
        sessions = plan_sessions(
            stream(seed, Stream.VISITS, day), w.people, w.devices, factor, day, season_factor, p
        )
        visits = plan_visits(stream(seed, Stream.CARTS, day), sessions, w.people, w.catalog)
        timeline = build_timeline(
            stream(seed, Stream.EVENTS, day), sessions, visits, w.people, cal.day_s(day),
            w.catalog.n,
        )  # fmt: skip
        orders = build_orders(
            stream(seed, Stream.ORDERS, day), sessions, visits, timeline, w.catalog, p,
            next_order_id=counts.orders + 1, next_item_id=counts.items + 1, end_s=cal.end_s,
        )  # fmt: skip
        counts.orders += orders.n
        counts.items += orders.items
        counts.guest_orders += int((orders.customer_id == 0).sum())
        ids = stream(seed, Stream.IDS, day)
        for lines, count in w.segment.day(ids, sessions, visits, timeline, orders):
            files.clicks.write(lines)
            counts.events += count
        self._orders(w.people, orders, w.truth)

        rng = stream(seed, Stream.SUPPORT, day)
        w.support.plan(rng, day, orders, factor)
        payloads = w.support.release(rng, day, factor)
        files.zendesk.write(b"".join(orjson.dumps(x) + b"\n" for x in payloads))
        counts.zendesk_events += len(payloads)

        activity = w.newsletter.send(stream(seed, Stream.EMAIL, day), day, factor)
        if activity is not None:
            for block in w.mailchimp.activity_lines(activity):
                files.activity.write(block)
            counts.activity_rows += activity.member.shape[0]
            record_ids = text.join(
                activity.campaign.id + ":", text.take(w.mailchimp.ids, activity.member)
            )
            persons = w.newsletter.person[activity.member]
            w.truth.record("mailchimp", "email_activity", record_ids, persons)

    def _finish(self, w: _World, mc_dir: Path) -> int:
        """Write the end-of-run files (Mailchimp members and campaigns, truth); count tickets."""
        members = self.outputs.file(mc_dir / "members.jsonl")
        for chunk in w.mailchimp.member_lines():
            members.write(chunk)
        self.outputs.file(mc_dir / "campaigns.jsonl").write(w.mailchimp.campaign_lines())
        export = self.outputs.file(mc_dir / "members_export.csv")
        for chunk in w.mailchimp.export_csv():
            export.write(chunk)
        nl, truth = w.newsletter, w.truth
        truth.email(nl.person, nl.variant)
        truth.phone(nl.person[nl.has_phone], PhoneStyle.NATIONAL)
        for person, variant in w.support.log.email_used:
            truth.email(np.asarray([person]), variant)
        shown = np.asarray(w.support.log.phone_shown, dtype=np.int64)
        truth.phone(shown, w.people.phone_style[shown])
        tickets = np.asarray(w.support.log.tickets, dtype=np.int64).reshape(-1, 2)
        truth.record("zendesk", "ticket", text.ints(tickets[:, 0]), tickets[:, 1])
        truth.finish(self.seed, w.devices, w.support, nl)
        return int(tickets.shape[0])

    def _customers(self, people: People, truth: Truth) -> None:
        for start in range(0, people.customers, _CUSTOMER_CHUNK):
            idx = np.arange(start, min(start + _CUSTOMER_CHUNK, people.customers), dtype=np.int64)
            birth = people.birth_day[idx]
            births = text.to_str(text.dates(np.maximum(birth, 0)))
            rows = list(
                zip(
                    (idx + 1).tolist(),
                    people.emails(idx, EmailVariant.ACCOUNT),
                    people.first_names(idx),
                    people.last_names(idx),
                    people.phones(idx, people.phone_style[idx]),
                    [b if d >= 0 else None for b, d in zip(births, birth.tolist(), strict=True)],
                    people.address_lines(idx),
                    people.postcodes(idx),
                    people.cities(idx),
                    people.countries(idx),
                    people.opt_in[idx].tolist(),
                    self._db_times(people.created_s[idx]),
                    self._db_times(people.updated_s[idx]),
                    strict=True,
                )
            )
            self.db.add("customers", rows)
            truth.email(idx, EmailVariant.ACCOUNT)
            truth.phone(idx, people.phone_style[idx])
            truth.record("mysql", "customer", text.ints(idx + 1), idx)

    def _products(self, catalog: Catalog) -> None:
        created = self._db_times(catalog.created_s)
        self.db.add(
            "products",
            list(
                zip(
                    range(1, catalog.n + 1),
                    catalog.sku,
                    catalog.name,
                    [vocab.CATEGORIES[c][0] for c in catalog.category.tolist()],
                    text.money(catalog.price_cents).to_pylist(),
                    created,
                    created,
                    strict=True,
                )
            ),
        )

    def _orders(self, people: People, orders: Orders, truth: Truth) -> None:
        if orders.n == 0:
            return
        person = orders.person
        phone_style = orders.phone_style
        phones = people.phones(person, np.maximum(phone_style, 0).astype(np.uint8))
        given = (phone_style >= 0).tolist()
        created = self._db_times(orders.created_s)
        customer = orders.customer_id.tolist()
        status = [ORDER_STATUSES[s] for s in orders.status.tolist()]
        self.db.add(
            "orders",
            list(
                zip(
                    orders.order_id.tolist(),
                    [c or None for c in customer],
                    people.emails(person, orders.email_variant),
                    status,
                    [CURRENCY] * orders.n,
                    text.money(orders.subtotal).to_pylist(),
                    text.money(orders.shipping).to_pylist(),
                    text.money(orders.total).to_pylist(),
                    people.full_names(person, typo=orders.name_typo),
                    people.address_lines(person),
                    people.postcodes(person),
                    people.cities(person),
                    people.countries(person),
                    [ph if g else None for ph, g in zip(phones, given, strict=True)],
                    created,
                    self._db_times(orders.updated_s),
                    strict=True,
                )
            ),
        )
        self.db.add(
            "order_items",
            list(
                zip(
                    orders.item_id.tolist(),
                    orders.order_id[orders.item_order].tolist(),
                    (orders.item_product + 1).tolist(),
                    orders.item_quantity.tolist(),
                    text.money(orders.item_price).to_pylist(),
                    [created[i] for i in orders.item_order.tolist()],
                    strict=True,
                )
            ),
        )
        truth.email(person, orders.email_variant)
        truth.phone(person, phone_style)
        truth.record("mysql", "order", text.ints(orders.order_id), person)
