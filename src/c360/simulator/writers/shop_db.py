"""The orders database (``contracts.shop_db``) through SQLAlchemy: SQLite, MariaDB/MySQL, ...

Rows go in with the driver's ``executemany`` in chunks of 10,000, on a background thread (SQLite
and the network drivers release the GIL while the database works). Values are passed as plain
``str``/``int``/``bool``/``None`` that every driver accepts: timestamps as text in the form
SQLAlchemy itself stores for the dialect, money as exact decimal text.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, inspect, literal, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from c360.contracts.shop_db import TABLES, metadata
from c360.errors import ConfigError, TerminalError

log = logging.getLogger(__name__)

CHUNK_ROWS = 10_000
COMMIT_ROWS = 200_000
Row = tuple[Any, ...]


class TargetNotEmptyError(TerminalError):
    """The orders database already holds data and ``--replace`` was not given."""


class ShopDb:
    """Creates the four tables, then loads rows streamed in by table."""

    def __init__(self, url: str, *, replace: bool) -> None:
        self.url = make_url(url)
        self.safe_url = self.url.render_as_string(hide_password=True)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite and self.url.database not in (None, "", ":memory:"):
            Path(self.url.database or "").parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine: Engine = create_engine(self.url)
        except ImportError as exc:
            raise ConfigError(
                "sources.mysql.url", f"no driver for {self.safe_url}: {exc}; install it"
            ) from None
        self._prepare(replace)
        style = self.engine.dialect.paramstyle
        self._mark = "?" if style == "qmark" else "%s"
        self.datetime_format = "sqlite" if self.is_sqlite else "plain"
        self.counts: dict[str, int] = {t.name: 0 for t in TABLES}
        self._buffers: dict[str, list[Row]] = {t.name: [] for t in TABLES}
        self._sql = {t.name: self._insert_sql(t) for t in TABLES}
        self._queue: queue.Queue[tuple[str, list[Row]] | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="c360-shop-db", daemon=True)
        self._thread.start()

    def _prepare(self, replace: bool) -> None:
        try:
            inspector = inspect(self.engine)
            present = [t for t in TABLES if inspector.has_table(t.name)]
            with self.engine.connect() as conn:
                filled = [
                    t.name
                    for t in present
                    if conn.execute(select(literal(1)).select_from(t).limit(1)).first() is not None
                ]
            if filled and not replace:
                raise TargetNotEmptyError(
                    f"the orders database {self.safe_url} already has rows in "
                    f"{', '.join(filled)}; pass --replace to drop and recreate its 4 tables "
                    "(or point sources.mysql.url at an empty database)"
                )
            if replace and present:
                log.info("dropping the shop tables in %s", self.safe_url)
                metadata.drop_all(self.engine, tables=list(TABLES))
            metadata.create_all(self.engine, tables=list(TABLES))
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise TerminalError(f"orders database {self.safe_url}: {exc}") from exc

    def _insert_sql(self, table: Table) -> str:
        quote = self.engine.dialect.identifier_preparer.quote
        cols = ", ".join(quote(c.name) for c in table.columns)
        marks = ", ".join([self._mark] * len(table.columns))
        return f"INSERT INTO {quote(table.name)} ({cols}) VALUES ({marks})"

    def _run(self) -> None:
        try:
            with self.engine.connect() as conn:
                if self.is_sqlite:
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                    conn.exec_driver_sql("PRAGMA synchronous=OFF")
                pending = 0
                while True:
                    item = self._queue.get()
                    if item is None:
                        break
                    table, rows = item
                    conn.exec_driver_sql(self._sql[table], rows)
                    pending += len(rows)
                    if pending >= COMMIT_ROWS:
                        conn.commit()
                        pending = 0
                conn.commit()
        except BaseException as exc:  # surfaced on the next add() or on close()
            self._error = exc
            while self._queue.get() is not None:  # drain so producers never block
                pass

    def _check(self) -> None:
        if self._error is not None:
            raise TerminalError(f"writing the orders database {self.safe_url}: {self._error}")

    def add(self, table: str, rows: list[Row]) -> None:
        """Queue rows for ``table`` (all tables of earlier calls are flushed first)."""
        self._check()
        buffer = self._buffers[table]
        buffer.extend(rows)
        self.counts[table] += len(rows)
        if len(buffer) >= CHUNK_ROWS:
            self._flush(table)

    def _flush(self, table: str) -> None:
        # parents first: rows may reference rows still buffered for an earlier table
        for parent in TABLES:
            if parent.name == table:
                break
            if self._buffers[parent.name]:
                self._flush(parent.name)
        buffer = self._buffers[table]
        for start in range(0, len(buffer), CHUNK_ROWS):
            self._queue.put((table, buffer[start : start + CHUNK_ROWS]))
        self._buffers[table] = []

    def close(self) -> None:
        """Flush everything and wait for the database to finish."""
        try:
            if self._error is None:
                for table in TABLES:
                    if self._buffers[table.name]:
                        self._flush(table.name)
        finally:
            self._queue.put(None)
            self._thread.join()
            self.engine.dispose()
        self._check()

    def abort(self) -> None:
        if self._thread.is_alive():
            self._error = self._error or RuntimeError("aborted")
            self._queue.put(None)
            self._thread.join()
        self.engine.dispose()
