"""The ShopSmart transactional database (the "MySQL" source).

Written by the simulator through SQLAlchemy to any URL (SQLite by default, MariaDB/MySQL when
given one) and read by the ingest step. Timestamps are naive ``DATETIME`` values in UTC (the usual
MySQL convention); money is ``DECIMAL``. ``orders.customer_id`` is NULL for guest checkouts, whose
``email`` may differ from any account's.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
)

metadata = MetaData()

ORDER_STATUSES = ("placed", "shipped", "delivered", "cancelled", "refunded")

customers = Table(
    "customers",
    metadata,
    Column("customer_id", Integer, primary_key=True, autoincrement=False),
    Column("email", String(255), nullable=False),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("phone", String(32)),
    Column("birth_date", Date),
    Column("address_line", String(255)),
    Column("postcode", String(16)),
    Column("city", String(100)),
    Column("country", String(2)),
    Column("marketing_opt_in", Boolean, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

products = Table(
    "products",
    metadata,
    Column("product_id", Integer, primary_key=True, autoincrement=False),
    Column("sku", String(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("category", String(64), nullable=False),
    Column("price", Numeric(10, 2), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", BigInteger, primary_key=True, autoincrement=False),
    Column("customer_id", Integer, ForeignKey("customers.customer_id"), nullable=True),
    Column("email", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("subtotal", Numeric(12, 2), nullable=False),
    Column("shipping", Numeric(12, 2), nullable=False),
    Column("total", Numeric(12, 2), nullable=False),
    Column("shipping_name", String(200)),
    Column("shipping_address_line", String(255)),
    Column("shipping_postcode", String(16)),
    Column("shipping_city", String(100)),
    Column("shipping_country", String(2)),
    Column("phone", String(32)),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_orders_updated_at", "updated_at"),
    Index("ix_orders_customer_id", "customer_id"),
)

order_items = Table(
    "order_items",
    metadata,
    Column("order_item_id", BigInteger, primary_key=True, autoincrement=False),
    Column("order_id", BigInteger, ForeignKey("orders.order_id"), nullable=False),
    Column("product_id", Integer, ForeignKey("products.product_id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(10, 2), nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_order_items_order_id", "order_id"),
    Index("ix_order_items_updated_at", "updated_at"),
)

TABLES = (customers, products, orders, order_items)
