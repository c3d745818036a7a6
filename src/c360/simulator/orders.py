"""The day's orders: one per buying session, with items, money and a status history.

An order's whole life is drawn when it is placed (shipped, delivered, maybe cancelled or later
refunded); the database row shows the last step reached by the end of the simulation, and
``updated_at`` is that step's time, so it never passes the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from c360.simulator.behaviour import Sessions
from c360.simulator.carts import Visits
from c360.simulator.params import SECONDS_PER_DAY, WorldParams
from c360.simulator.timeline import Kind, Timeline
from c360.simulator.world import I64, U8, Bools, Catalog, EmailVariant

FREE_SHIPPING_CENTS = 5_000
SHIPPING_CENTS = 495


class Status(IntEnum):
    """Order status codes; ``Status(i).name.lower()`` is ``shop_db.ORDER_STATUSES[i]``."""

    PLACED = 0
    SHIPPED = 1
    DELIVERED = 2
    CANCELLED = 3
    REFUNDED = 4


@dataclass
class Orders:
    order_id: I64
    session: I64
    person: I64
    customer_id: I64  # 0 = guest checkout (NULL in the database)
    email_variant: U8
    created_s: I64
    updated_s: I64
    status: U8
    refund_s: I64  # when a refund happens (may be after the end), -1 if never
    subtotal: I64  # cents
    shipping: I64
    total: I64
    name_typo: Bools
    phone_style: I64  # PhoneStyle, -1 = no phone given
    item_id: I64
    item_order: I64  # row in these orders
    item_product: I64
    item_quantity: I64
    item_price: I64  # unit price, cents
    item_visit: I64  # the cart line (row in Visits)

    @property
    def n(self) -> int:
        return int(self.order_id.shape[0])

    @property
    def items(self) -> int:
        return int(self.item_id.shape[0])


def build_orders(
    rng: np.random.Generator,
    sessions: Sessions,
    visits: Visits,
    timeline: Timeline,
    catalog: Catalog,
    params: WorldParams,
    *,
    next_order_id: int,
    next_item_id: int,
    end_s: int,
) -> Orders:
    completed = timeline.first_of(Kind.ORDER_COMPLETED)
    buyers = np.flatnonzero(sessions.buy)
    ts_ms = timeline.start_ms[buyers] + timeline.rel_ms[completed[buyers]]
    order = np.lexsort((buyers, ts_ms))
    buyers, ts_ms = buyers[order], ts_ms[order]
    n = buyers.shape[0]
    order_id = next_order_id + np.arange(n, dtype=np.int64)
    created = ts_ms // 1000

    # items: the cart lines of the buying sessions, in order of the orders
    row_of_session = np.full(sessions.n, -1, dtype=np.int64)
    row_of_session[buyers] = np.arange(n)
    lines = visits.cart_lines()
    lines = lines[sessions.buy[visits.session[lines]]]
    item_order = row_of_session[visits.session[lines]]
    by_order = np.lexsort((visits.position[lines], item_order))
    lines, item_order = lines[by_order], item_order[by_order]
    product = visits.product[lines]
    quantity = visits.quantity[lines]
    price = catalog.price_cents[product]
    subtotal = np.bincount(item_order, weights=quantity * price, minlength=n).astype(np.int64)
    shipping = np.where(subtotal >= FREE_SHIPPING_CENTS, 0, SHIPPING_CENTS).astype(np.int64)

    # life: placed -> (cancelled | shipped -> delivered -> maybe refunded)
    day = SECONDS_PER_DAY
    cancel = rng.random(n) < params.cancel_share
    cancelled = created + rng.integers(600, 72_000, n)
    shipped = created + rng.integers(day // 2, 3 * day, n)
    delivered = shipped + rng.integers(day, 5 * day, n)
    refund = ~cancel & (rng.random(n) < params.refund_share)
    refunded = delivered + rng.integers(3 * day, 30 * day, n)
    status = np.full(n, Status.PLACED, dtype=np.uint8)
    updated = created.copy()
    for step, when, applies in (
        (Status.CANCELLED, cancelled, cancel),
        (Status.SHIPPED, shipped, ~cancel),
        (Status.DELIVERED, delivered, ~cancel),
        (Status.REFUNDED, refunded, refund),
    ):
        reached = applies & (when <= end_s)
        status[reached] = step
        updated[reached] = when[reached]

    person = sessions.person[buyers]
    guest_variant = sessions.guest_variant[buyers]
    is_guest = sessions.customer_id[buyers] == 0
    variant = np.where(is_guest, guest_variant, EmailVariant.ACCOUNT).astype(np.uint8)
    phone_draw = rng.random(n)
    phone_style = np.where(phone_draw < 0.25, -1, (phone_draw * 4).astype(np.int64) % 3)
    return Orders(
        order_id=order_id,
        session=buyers,
        person=person,
        customer_id=sessions.customer_id[buyers],
        email_variant=variant,
        created_s=created,
        updated_s=updated,
        status=status,
        refund_s=np.where(refund, refunded, -1),
        subtotal=subtotal,
        shipping=shipping,
        total=subtotal + shipping,
        name_typo=is_guest & (rng.random(n) < 0.05),
        phone_style=phone_style.astype(np.int64),
        item_id=next_item_id + np.arange(lines.shape[0], dtype=np.int64),
        item_order=item_order,
        item_product=product,
        item_quantity=quantity,
        item_price=price,
        item_visit=lines,
    )
