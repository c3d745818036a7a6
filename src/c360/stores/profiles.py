"""Reading unified profiles by key: the serving layer's hot path behind the Profile API.

The website calls the API on every page view, so a read is one statement of indexed lookups by
person (real-time rows hold their person: :mod:`c360.stores.resolution`) run through the
driver's own connection and cursor: no SQL compiled per call, no result metadata built per
query (SQLAlchemy's execution path cost three times the database's own work here). The SQL is
the ``profile`` view's (:mod:`c360.stores.views`) narrowed to one person, but for the real-time
part: the person's rows, picked in Python (:func:`c360.stores.views.realtime_of`); the merge is
:func:`c360.speed.merge.merge`, the same rules the view is generated from.

SQLite hands back dates, times and booleans as it stores them (text, 0/1): the dialect's
converters turn the columns that hold them into Python values, so both stores answer alike.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Generator, Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeAlias, TypeVar, cast

import orjson
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from c360.access.consent import Decision
from c360.contracts import serving
from c360.contracts.times import epoch_ms, naive_utc, naive_utc_now
from c360.speed import merge
from c360.stores import consent
from c360.stores.columns import FROM_TEXT
from c360.stores.views import (
    ORDER_DELTAS_FOR_PERSON,
    SUPPORT_FOR_PERSON,
    realtime_of,
    realtime_row_columns_sql,
    realtime_rows_sql,
)

if TYPE_CHECKING:
    from c360.stores.base import StoreDialect

# An anonymous_id resolves through its real-time stitch link first (the customer it identified
# as since the batch), then through the batch's identity_map — the same order as the views.
_FIND_BY_LINK = """
SELECT m.person_id FROM identity_stitch s
JOIN identity_map m ON m.id_type = 'customer_id' AND m.id_value = s.customer_id
WHERE s.anonymous_id = :v
"""
# Which batch is serving: a publish adds a row, so a cached batch part is valid while this holds.
_PUBLISH = "SELECT id FROM batch_publish ORDER BY id DESC LIMIT 1"
_FIND = "SELECT person_id FROM identity_map WHERE id_type = :t AND id_value = :v"
# The find with the publish whose identity_map answers it (one statement: one snapshot).
_FIND_AT_PUBLISH = (
    f"SELECT person_id, ({_PUBLISH}) AS publish_id FROM identity_map"
    " WHERE id_type = :t AND id_value = :v"
)
# The person of an identifier, found once for a read by identifier
# (:meth:`ProfileReads._identified`) and named in each place the parts statement names the
# person, where a statement is a round trip (PostgreSQL; SQLite finds the person first). A
# scalar subquery in each place repeated the find (PostgreSQL's plan had twelve index scans of
# identity_map, now three). PostgreSQL materialises a CTE named more than once.
_WITH_FOUND = (
    "WITH found AS (SELECT person_id FROM identity_map WHERE id_type = :t AND id_value = :v)"
)
_FOUND = "(SELECT person_id FROM found)"
# An identifier identity left out of identity_map: records of several persons carry it.
_AMBIGUOUS = "SELECT persons FROM ambiguous_identifier WHERE id_type = :t AND id_value = :v"
_REDIRECT = "SELECT person_id FROM person_redirect WHERE retired_id = :person_id"
_IDENTIFIERS = (
    "SELECT id_type, id_value FROM identity_map WHERE person_id = :person_id"
    " ORDER BY id_type, id_value"
)
_CUTOFF = "SELECT cutoff_at FROM batch_publish ORDER BY id DESC LIMIT 1"

Row = dict[str, Any]
T = TypeVar("T")
# A read as the statements it makes: each (driver SQL, parameters) is yielded and answered with
# (the cursor, its rows); a sync or an async driver runs it (ProfileReads._run, ._arun). A step
# reads the cursor's description only if it needs the column names: psycopg builds it anew on
# each access, a tenth of a profile read's client CPU.
Steps: TypeAlias = Generator[tuple[str, Mapping[str, Any]], tuple[Any, list[Any]], T]
Converters = Mapping[str, Callable[[Any], Any]]
Converter = tuple[str, Callable[[Any], Any]]


class ProfileReads:
    """The by-key reads of one store, on the driver's connections from the engine's pool."""

    def __init__(self, engine: Engine, dialect: StoreDialect) -> None:
        self._engine = engine
        self._convert: Converters = dialect.converters()
        sql = dialect.driver_sql
        self._sql = {
            "find_by_link": sql(_FIND_BY_LINK),
            "find": sql(_FIND),
            "find_at_publish": sql(_FIND_AT_PUBLISH),
            "ambiguous": sql(_AMBIGUOUS),
            "redirect": sql(_REDIRECT),
        }
        # One statement a profile, each part as JSON where the dialect can (a round trip
        # saved), else each part's columns in one row; "live" leaves out the batch's parts (a
        # cached person's read). Where a statement is a round trip, "identified" finds the
        # person by identifier in the same statement (a read by identifier not found before);
        # elsewhere (SQLite) the find comes first, so the read can use a cached batch part.
        self._as_json = dialect.reads_in_one_statement
        parts = _at_once_sql if self._as_json else _in_one_row_sql
        self._sql["parts"] = sql(parts(dialect, True))
        self._sql["live"] = sql(parts(dialect, False))
        self._columns: dict[str, tuple[str, ...]] = {}  # of the JSON reads: known, not asked
        if self._as_json:
            self._sql["identified"] = sql(_by_identifier_sql(parts(dialect, True)))
            whole, live = (tuple(_at_once_parts(dialect, batch)) for batch in (True, False))
            self._columns = {"parts": whole, "live": live, "identified": whole}
        self._connections = ThreadConnections(engine, dialect.hold_for_reads)
        self.async_pool: AsyncConnections | None = dialect.async_connections(engine)
        self._layouts: dict[str, tuple[tuple[str, ...], list[PartLayout]]] = {}
        self.cache = BatchCache(0)

    def _query(self, query: str, params: Mapping[str, Any]) -> Steps[list[Row]]:
        """A statement's rows as dicts (the driver runs it: see :meth:`_run`)."""
        cursor, fetched = yield self._sql[query], params
        names = [column[0] for column in cursor.description]
        convert = self._convert
        if not convert:
            return [dict(zip(names, row, strict=True)) for row in fetched]
        converters = [convert.get(name) for name in names]
        return [
            {
                name: (value if to is None or value is None else to(value))
                for name, value, to in zip(names, row, converters, strict=True)
            }
            for row in fetched
        ]

    def _run(self, steps_of: Callable[[], Steps[T]]) -> T:
        """The reads' statements (``steps_of()`` yields each and is sent its result) on this
        thread's connection."""

        def work(cursor: Any) -> T:
            steps = steps_of()
            statement = next(steps)
            while True:
                cursor.execute(*statement)
                try:
                    statement = steps.send((cursor, cursor.fetchall()))
                except StopIteration as done:
                    return cast(T, done.value)

        return self._read(work)

    def _read(self, work: Callable[[Any], T]) -> T:
        """``work`` on a cursor of this thread's connection; once more on a new connection if
        the database had dropped the old one (a server restart: the first read after it)."""
        for attempt in (1, 2):
            connection = self._connections.get()
            try:
                return work(self._connections.cursor(connection))
            except Exception as exc:
                dropped = self._connections.dropped(exc, connection)
                self._connections.discard()
                if not dropped:
                    raise
                if attempt == 2:
                    raise _lost(exc, self._engine) from exc
        raise AssertionError("unreachable")

    async def _arun(self, steps_of: Callable[[], Steps[T]]) -> T:
        """:meth:`_run` on a connection of the async pool, on the event loop (no thread hop);
        once more on a new connection if the database had dropped the one it got."""
        pool = self.async_pool
        if pool is None:
            raise RuntimeError("this store has no async reads")
        for attempt in (1, 2):
            connection = await pool.acquire()
            try:
                cursor = pool.cursor(connection)
                steps = steps_of()
                statement = next(steps)
                while True:
                    await cursor.execute(*statement)
                    try:
                        statement = steps.send((cursor, await cursor.fetchall()))
                    except StopIteration as done:
                        pool.release(connection)
                        return cast(T, done.value)
            except BaseException as exc:  # cancelled mid-statement too: the connection goes
                dropped = isinstance(exc, Exception) and pool.dropped(exc, connection)
                pool.discard(connection)
                if not dropped:
                    raise
                if attempt == 2:
                    raise _lost(cast(Exception, exc), self._engine) from exc
        raise AssertionError("unreachable")

    async def afind_person(self, id_type: str, id_value: str) -> str | None:
        return await self._arun(lambda: self._find(id_type, id_value))

    async def aprofile_and_consent(
        self, person_id: str, now: dt.datetime | None, explain: bool
    ) -> tuple[dict[str, Any], Decision | None] | None:
        return await self._arun(lambda: self._profile(person_id, now, explain))

    async def aprofile_by_identifier(
        self, id_type: str, id_value: str, explain: bool
    ) -> tuple[dict[str, Any], Decision | None] | Ambiguous | None:
        return await self._arun(lambda: self._by_identifier(id_type, id_value, explain))

    def close(self) -> None:
        self._connections.close_all()
        if self.async_pool is not None:
            self.async_pool.close_all()

    def find_person(self, id_type: str, id_value: str) -> str | None:
        """The person an identifier (in lookup form) belongs to, or None."""
        return self._run(lambda: self._find(id_type, id_value))

    def _find(self, id_type: str, id_value: str) -> Steps[str | None]:
        if id_type == "anonymous_id":
            linked = yield from self._query("find_by_link", {"v": id_value})
            if linked:
                return str(linked[0]["person_id"])
        rows = yield from self._query("find", {"t": id_type, "v": id_value})
        return str(rows[0]["person_id"]) if rows else None

    def profile(
        self, person_id: str, now: dt.datetime | None, explain: bool
    ) -> dict[str, Any] | None:
        """See :meth:`c360.stores.ServingStore.profile`."""
        found = self.profile_and_consent(person_id, now, explain)
        return None if found is None else found[0]

    def profile_and_consent(
        self, person_id: str, now: dt.datetime | None, explain: bool
    ) -> tuple[dict[str, Any], Decision | None] | None:
        """The profile and the person's newest consent decision since the batch, read in the
        same statement."""
        return self._run(lambda: self._profile(person_id, now, explain))

    def profile_by_identifier(
        self, id_type: str, id_value: str, explain: bool
    ) -> tuple[dict[str, Any], Decision | None] | Ambiguous | None:
        """:meth:`profile_and_consent` of the person an identifier belongs to, in one use of
        the connection; :class:`Ambiguous` when no one person holds it but several do."""
        return self._run(lambda: self._by_identifier(id_type, id_value, explain))

    def _by_identifier(
        self, id_type: str, id_value: str, explain: bool
    ) -> Steps[tuple[Row, Decision | None] | Ambiguous | None]:
        """The find is kept in the cache with the publish whose identity_map answered it, and
        is good while the profile read says that publish still serves (only a publish or an
        erasure changes identity_map, and an erased person's read finds no one). A cookie is
        found again every time: the speed layer links cookies between publishes.

        An identifier not kept: on a networked store the find and the whole read are one
        statement (one round trip); on SQLite, whose statements are calls, the find comes
        first, so a person whose batch part is cached (read by id before, or by another
        identifier) costs only the real-time read (a third less than the whole one)."""
        cacheable = id_type != "anonymous_id"
        key = (id_type, id_value)
        cached = self.cache.find(key) if cacheable else None
        if cached is not None:
            read = yield from self._profile_read(cached[0], None, explain)
            if read is not None and read[2] == cached[1]:
                return read[0], read[1]
            self.cache.forget_find(key)
        if cacheable and not self._as_json:  # no round trips: find first (see __init__)
            found = yield from self._query("find_at_publish", {"t": id_type, "v": id_value})
            if found:
                person_id, publish_id = str(found[0]["person_id"]), found[0]["publish_id"]
                read = yield from self._profile_read(person_id, None, explain)
                if read is not None:
                    if read[2] == publish_id:  # no publish in between: the find holds
                        self.cache.keep_find(key, (person_id, publish_id))
                    return read[0], read[1]
        elif cacheable:
            identified = yield from self._identified(id_type, id_value, explain)
            if identified is not None:
                person_id, read = identified
                self.cache.keep_find(key, (person_id, read[2]))
                return read[0], read[1]
        else:
            cookie_person = yield from self._find(id_type, id_value)
            if cookie_person is not None:
                read = yield from self._profile_read(cookie_person, None, explain)
                return None if read is None else (read[0], read[1])
        # no one found: asked only now, so a found person's read pays nothing for it
        return (yield from self._ambiguous(id_type, id_value))

    def _identified(
        self, id_type: str, id_value: str, explain: bool
    ) -> Steps[tuple[str, tuple[Row, Decision | None, int | None]] | None]:
        """The person an identifier belongs to and their whole profile read, in one statement
        (one round trip: the find, then the read, were two): None when identity_map has no one
        for it. The batch's parts are cached like any whole read's; the find and the read see
        the same publish, so the find can be kept with it."""
        now = naive_utc_now()
        self.cache.misses += 1
        found = yield from self._found(
            "identified", {"t": id_type, "v": id_value, "now_ms": epoch_ms(now)}
        )
        if found is None:
            return None
        person_id = str(found["person"]["person_id"])
        parts = self._cached(person_id, found)
        return person_id, _read_of(person_id, None, parts, now, explain)

    def _ambiguous(self, id_type: str, id_value: str) -> Steps[Ambiguous | None]:
        rows = yield from self._query("ambiguous", {"t": id_type, "v": id_value})
        return Ambiguous(id_type, int(rows[0]["persons"])) if rows else None

    def _profile(
        self, person_id: str, now: dt.datetime | None, explain: bool
    ) -> Steps[tuple[Row, Decision | None] | None]:
        read = yield from self._profile_read(person_id, now, explain)
        return None if read is None else (read[0], read[1])

    def _profile_read(
        self, person_id: str, now: dt.datetime | None, explain: bool
    ) -> Steps[tuple[Row, Decision | None, int | None] | None]:
        """The profile, its consent decision since the batch and the publish that served."""
        now = naive_utc_now() if now is None else naive_utc(now)
        parts = yield from self._parts(person_id, now)
        redirected_from = None
        if parts is None:
            survivor = yield from self._query("redirect", {"person_id": person_id})
            if not survivor:
                return None
            redirected_from, person_id = person_id, str(survivor[0]["person_id"])
            parts = yield from self._parts(person_id, now)
            if parts is None:
                return None
        return _read_of(person_id, redirected_from, parts, now, explain)

    def _parts(self, person_id: str, now: dt.datetime) -> Steps[Parts | None]:
        """The parts of a profile, in one statement: the real-time ones only, when the batch's
        are cached from the batch that still serves (the statement says which one does)."""
        params = {"person_id": person_id, "now_ms": epoch_ms(now)}
        cached = self.cache.get(person_id)
        if cached is not None:
            live = yield from self._found("live", params)
            if live is None:  # erased since it was cached
                self.cache.drop(person_id)
                return None
            if live["publish_id"] == cached.publish_id:
                self.cache.hits += 1
                return _assembled(cached, live)
        self.cache.misses += 1
        found = yield from self._found("parts", params)
        return None if found is None else self._cached(person_id, found)

    def _cached(self, person_id: str, found: Row) -> Parts:
        """The parts of a whole read, its batch's kept in the cache."""
        batch = BatchParts(
            found["publish_id"], found["person"], found["batch"], found["identifiers"]
        )
        self.cache.put(person_id, batch)
        return _assembled(batch, found)

    def _found(self, statement: str, params: Mapping[str, Any]) -> Steps[Row | None]:
        """The parts statement ``statement`` read, by part name (None: no such person)."""
        cursor, fetched = yield self._sql[statement], params
        if not fetched:
            return None
        if self._as_json:
            return self._found_in_json(fetched[0], self._columns[statement])
        return self._found_in_rows(fetched, self._layout(statement, cursor.description))

    def _found_in_rows(self, rows: list[Any], layout: list[PartLayout]) -> Row:
        """The parts from the rows of :func:`_in_one_row_sql`, split at its marker columns: the
        first row's, and the real-time part of each (a row each)."""
        parts = {part: _values(rows[0], start, names, to) for part, start, names, to in layout}
        realtime = [parts["realtime"]]
        if len(rows) > 1:
            _, start, names, to = next(entry for entry in layout if entry[0] == "realtime")
            realtime += [_values(row, start, names, to) for row in rows[1:]]
        rest = parts["end"]
        support = parts["support"]
        found = {
            "realtime": realtime_of(realtime if realtime[0]["id_type"] is not None else []),
            "deltas": _present(parts["deltas"]),
            "support": support if support.get("person_id") is not None else None,
            "cutoff": rest["cutoff_at"],
            "consent": _newest_decision(orjson.loads(rest["consent_decisions"] or "[]")),
            "publish_id": rest["publish_id"],
        }
        if "batch" in parts:
            identifiers = rest["identifiers"]
            found["person"] = parts["person"]
            found["batch"] = _present(parts["batch"])
            found["identifiers"] = orjson.loads(identifiers) if identifiers else []
        return found

    def _layout(self, statement: str, description: Any) -> list[PartLayout]:
        """Per part of ``statement``'s row: its name, where it starts, its column names and
        their converters. Worked out again only when the columns change (a publish that adds a
        feature)."""
        names = tuple(column[0] for column in description)
        known = self._layouts.get(statement)
        if known is None or known[0] != names:
            known = self._layouts[statement] = (names, _split(names, self._convert))
        return known[1]

    def _found_in_json(self, row: Any, columns: tuple[str, ...]) -> Row | None:
        """The parts from one row of :func:`_at_once_sql` (its ``columns``), each a JSON
        value."""
        values = dict(zip(columns, row, strict=True))
        if values["person"] is None:
            return None
        realtime, deltas, support = values["realtime"], values["deltas"], values["support"]
        found = {
            "realtime": realtime_of([self._typed(row) for row in realtime or []]),
            "deltas": self._typed(deltas) if deltas is not None else {},
            "support": self._typed(support) if support is not None else None,
            "cutoff": values["cutoff"],
            "consent": _newest_decision([list(d.values()) for d in values["consent"] or []]),
            "publish_id": values["publish_id"],
        }
        if "batch" in values:
            batch = values["batch"]
            found["person"] = self._typed(values["person"])
            found["batch"] = self._typed(batch) if batch is not None else {}
            found["identifiers"] = values["identifiers"] or []
        return found

    @staticmethod
    def _typed(row: Row) -> Row:
        """A row parsed from JSON with its dates, times and booleans as Python values."""
        for name, value in row.items():
            if value is not None and name in FROM_TEXT:
                row[name] = FROM_TEXT[name](value)
        return row


class Ambiguous(NamedTuple):
    """A looked-up identifier no one person holds: identity left it out of ``identity_map``
    because records of ``persons`` persons carry it (a shared mailbox, a household phone:
    :func:`c360.identity.stable_ids.identity_map`)."""

    id_type: str
    persons: int


class Parts(NamedTuple):
    """What a profile is made of, as the store holds it."""

    person: Row
    batch: Row  # empty when the batch has no row for the person
    identifiers: list[Row]
    realtime: Row  # empty without real-time state
    deltas: Row  # empty without orders since the cutoff
    support: Row | None  # None without support state
    cutoff: dt.datetime | None  # the serving batch's
    consent: Decision | None = None  # the newest consent decision since the batch
    publish_id: int | None = None  # the batch_publish that served the read


class BatchParts(NamedTuple):
    """The parts of a profile only a publish (or an erasure) changes, and the publish read."""

    publish_id: int | None
    person: Row
    batch: Row
    identifiers: list[Row]


def _assembled(batch: BatchParts, live: Row) -> Parts:
    return Parts(
        batch.person,
        batch.batch,
        batch.identifiers,
        live["realtime"],
        live["deltas"],
        live["support"],
        live["cutoff"],
        live["consent"],
        live["publish_id"],
    )


def _values(row: Any, start: int, names: tuple[str, ...], converters: list[Converter]) -> Row:
    """A part of a row of :func:`_in_one_row_sql` by column name, its values converted."""
    values = dict(zip(names, row[start : start + len(names)], strict=True))
    for name, to in converters:
        value = values[name]
        if value is not None:
            values[name] = to(value)
    return values


def _present(part: Row) -> Row:
    """A LEFT JOINed part of a row: empty when the join found nothing."""
    return part if part.get("person_id") is not None else {}


PartLayout: TypeAlias = tuple[str, int, tuple[str, ...], list[Converter]]


K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """At most ``size`` entries, the least recently used dropped first (0: none kept);
    ``on_drop(key)`` is called for each entry dropped (evicted, dropped or resized away)."""

    def __init__(self, size: int, on_drop: Callable[[K], None] | None = None) -> None:
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._on_drop = on_drop

    def get(self, key: K) -> V | None:
        if not self.size:
            return None
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: K, value: V) -> bool:
        """Keep ``value``; False when nothing is kept (size 0)."""
        with self._lock:
            if not self.size:
                return False
            self._entries[key] = value
            self._entries.move_to_end(key)
            self._trim()
            return True

    def drop(self, key: K) -> None:
        with self._lock:
            if self._entries.pop(key, None) is not None and self._on_drop is not None:
                self._on_drop(key)

    def resize(self, size: int) -> None:
        with self._lock:
            self.size = size
            self._trim()

    def _trim(self) -> None:
        while len(self._entries) > self.size:
            key, _ = self._entries.popitem(last=False)
            if self._on_drop is not None:
                self._on_drop(key)


class BatchCache:
    """The batch's parts of the profiles read most recently, and the persons the identifiers
    looked up most recently belong to (each least recently used dropped past ``size``; 0: none
    kept), so a read of a cached person reads only its real-time parts, and a read by a cached
    identifier needs no find.

    Never stale: the batch's parts and identity_map change only with a publish, which adds a
    ``batch_publish`` row, and with an erasure, which deletes the person — every read still
    reads both (which publish serves, and whether the person is there) and falls back to the
    whole read, or the find, when either changed. Cached rows are shared: the answer is built
    from copies (:func:`unified`)."""

    def __init__(self, size: int) -> None:
        self.hits = self.misses = 0
        # A person's batch part is kept as things the cyclic garbage collector does not track:
        # the two rows as they are (dicts of plain values), and the publish with the
        # identifiers' types and values in one tuple of plain values (untracked the first time
        # the collector meets it). Kept as one tuple of the rows and a list, a full cache of
        # 20,000 persons was 40,000 objects each full collection walked: a cold server filling
        # it paused twice for 40 to 57 ms (a p99 stall), and one whose cache turns over would
        # pause so again as new entries pile up.
        self._persons: dict[str, Row] = {}
        self._batches: dict[str, Row] = {}
        self._parts: _Lru[str, tuple[Any, ...]] = _Lru(size, on_drop=self._drop_rows)
        self._finds: _Lru[tuple[str, str], tuple[str, int | None]] = _Lru(size)

    @property
    def size(self) -> int:
        return self._parts.size

    def get(self, person_id: str) -> BatchParts | None:
        kept = self._parts.get(person_id)
        person, batch = self._persons.get(person_id), self._batches.get(person_id)
        if kept is None or person is None or batch is None:  # a put still under way
            return None
        pairs = zip(kept[1::2], kept[2::2])  # noqa: B905  # types and values in turn
        identifiers = [{"id_type": kind, "id_value": value} for kind, value in pairs]
        return BatchParts(kept[0], person, batch, identifiers)

    def put(self, person_id: str, parts: BatchParts) -> None:
        if not self._parts.size:
            return
        self._persons[person_id] = parts.person
        self._batches[person_id] = parts.batch
        flat = (value for i in parts.identifiers for value in (i["id_type"], i["id_value"]))
        if not self._parts.put(person_id, (parts.publish_id, *flat)):  # resized to 0 meanwhile
            self._drop_rows(person_id)

    def _drop_rows(self, person_id: str) -> None:
        self._persons.pop(person_id, None)
        self._batches.pop(person_id, None)

    def drop(self, person_id: str) -> None:
        self._parts.drop(person_id)

    def find(self, identifier: tuple[str, str]) -> tuple[str, int | None] | None:
        """The person an identifier (type, value) was found to belong to, and the publish that
        served then."""
        return self._finds.get(identifier)

    def keep_find(self, identifier: tuple[str, str], found: tuple[str, int | None]) -> None:
        self._finds.put(identifier, found)

    def forget_find(self, identifier: tuple[str, str]) -> None:
        self._finds.drop(identifier)

    def resize(self, size: int) -> None:
        self._parts.resize(size)
        self._finds.resize(size)


class AsyncConnections(Protocol):
    """A networked store's async driver connections for the hot reads, on the running event
    loop (:meth:`StoreDialect.async_connections`): at most ``at_once`` acquired at a time."""

    async def acquire(self) -> Any: ...

    def cursor(self, connection: Any) -> Any:
        """The connection's cursor, made with it and used by each read on it."""

    def release(self, connection: Any) -> None: ...

    def discard(self, connection: Any) -> None: ...

    def dropped(self, error: Exception, connection: Any) -> bool: ...

    def close_all(self) -> None: ...

    def resize(self, at_once: int) -> None: ...


class ThreadConnections:
    """One driver connection per thread for the hot reads, held between reads rather than
    checked out of the pool for each: a checkout and check-in (and the pool's liveness ping,
    a round trip on PostgreSQL) cost more than a profile read's own work. A connection is made
    by the engine's pool (its ``connect`` listeners run) and detached from it, so it uses up no
    pool slot; ``hold`` readies it for reads (autocommit: each statement its own snapshot). A
    connection whose thread has ended is closed when the next one is opened; :meth:`close_all`
    closes every one (the store's ``dispose``), and a thread reading afterwards opens a new
    one."""

    def __init__(self, engine: Engine, hold: Callable[[Any], None]) -> None:
        self._engine = engine
        self._hold = hold
        self._local = threading.local()
        self._lock = threading.Lock()
        self._held: list[tuple[weakref.ref[threading.Thread], Any]] = []
        self._generation = 0  # raised by close_all: a thread's older connection is closed

    def get(self) -> Any:
        """This thread's driver (DBAPI) connection."""
        held: tuple[int, Any] | None = getattr(self._local, "held", None)
        if held is not None and held[0] == self._generation:
            return held[1]
        pooled = self._engine.raw_connection()
        pooled.detach()
        connection = pooled.dbapi_connection
        self._hold(connection)
        with self._lock:
            self._close_orphans()
            self._held.append((weakref.ref(threading.current_thread()), connection))
            self._local.held = (self._generation, connection)
        return connection

    def cursor(self, connection: Any) -> Any:
        """A cursor of this thread's ``connection``, made once and kept with it (psycopg sets
        a new cursor's adapters up anew: an eighth of a profile read's client CPU)."""
        kept: tuple[Any, Any] | None = getattr(self._local, "cursor", None)
        if kept is None or kept[0] is not connection:
            kept = self._local.cursor = (connection, connection.cursor())
        return kept[1]

    def dropped(self, error: Exception, connection: Any) -> bool:
        """Whether ``error`` says the database dropped ``connection`` (retrying may work)."""
        dialect = self._engine.dialect
        return isinstance(error, dialect.loaded_dbapi.Error) and dialect.is_disconnect(
            error, connection, None
        )

    def discard(self) -> None:
        """Close this thread's connection (after an error: the next read opens a new one)."""
        held = getattr(self._local, "held", None)
        self._local.held = self._local.cursor = None
        if held is not None:
            with self._lock:
                self._held = [(t, c) for t, c in self._held if c is not held[1]]
            _close_quietly(held[1])

    def close_all(self) -> None:
        with self._lock:
            held, self._held = self._held, []
            self._generation += 1
        for _, connection in held:
            _close_quietly(connection)

    def _close_orphans(self) -> None:
        alive = []
        for thread, connection in self._held:
            owner = thread()
            if owner is not None and owner.is_alive():
                alive.append((thread, connection))
            else:
                _close_quietly(connection)
        self._held = alive


def _lost(error: Exception, engine: Engine) -> sa_exc.StatementError:
    """The driver's ``error`` on a connection the database dropped, as SQLAlchemy reports one
    on its own connections (``connection_invalidated``): the store's classifier then counts it
    as passing, which the error alone (often without a SQLSTATE) does not say."""
    return sa_exc.DBAPIError.instance(
        None, None, error, engine.dialect.loaded_dbapi.Error, connection_invalidated=True
    )


def _close_quietly(connection: Any) -> None:
    with suppress(Exception):  # a connection the database dropped may fail to close
        connection.close()


def _at_once_sql(dialect: StoreDialect, with_batch: bool) -> str:
    """The profile read in one statement: each part as JSON, the cutoff and the serving
    publish as they are; ``with_batch`` False: only whether the person is there, no batch,
    no identifiers. Its columns are :func:`_at_once_parts`' names, in order."""
    parts = _at_once_parts(dialect, with_batch)
    return "SELECT " + ",\n       ".join(f"{sql} AS {name}" for name, sql in parts.items())


def _at_once_parts(dialect: StoreDialect, with_batch: bool) -> dict[str, str]:
    """The columns of :func:`_at_once_sql`: each part's name and SQL."""
    batch_parts = {
        "person": dialect.json_row("SELECT * FROM person WHERE person_id = :person_id"),
        "batch": dialect.json_row(
            f"SELECT * FROM {serving.BATCH_PROFILE} WHERE person_id = :person_id"
        ),
        "identifiers": dialect.json_rows(_IDENTIFIERS),
    }
    present = {"person": "(SELECT person_id FROM person WHERE person_id = :person_id)"}
    parts = {
        **(batch_parts if with_batch else present),
        "realtime": dialect.json_rows(realtime_rows_sql(dialect)),
        "deltas": dialect.json_row(ORDER_DELTAS_FOR_PERSON),
        "support": dialect.json_row(SUPPORT_FOR_PERSON),
        "cutoff": f"({_CUTOFF})",
        "consent": dialect.json_rows(consent.FOR_ONE),
        "publish_id": f"({_PUBLISH})",
    }
    return parts


_MARK = "-part "  # a marker column's name starts so: no column of c360's tables does


def _in_one_row_sql(dialect: StoreDialect, with_batch: bool) -> str:
    """The profile read in one statement: each part's columns after a marker column, then the
    identifiers (a JSON array), the cutoff and the serving publish; without ``with_batch``, the
    person's id only, no batch and no identifiers. A row per real-time row of the person (one
    without any), the other parts alike in each. No JSON per part: SQLite has no
    ``row_to_json`` for a table whose columns grow (``batch_profile``), and ``b.*`` follows
    them anyway (SQLite prepares the statement again after a schema change); nor for the
    real-time rows: its JSON writes a float in 15 digits (``cart_value`` would change)."""
    identifiers = (
        "SELECT json_group_array(json_object('id_type', id_type, 'id_value', id_value)) "
        f"FROM ({_IDENTIFIERS})"
    )
    decisions = (
        "SELECT json_group_array(json_array(person_id, consent, decided_at, source)) "
        f"FROM ({consent.FOR_ONE})"
    )
    marks = {
        name: f'NULL AS "{_MARK}{name}"'
        for name in ("batch", "realtime", "deltas", "support", "end")
    }
    batch = f"{marks['batch']}, b.*, " if with_batch else ""
    batch_join = (
        f"LEFT JOIN {serving.BATCH_PROFILE} b ON b.person_id = p.person_id" if with_batch else ""
    )
    listed = f"({identifiers}) AS identifiers, " if with_batch else ""
    return f"""
SELECT {"p.*" if with_batch else "p.person_id"}, {batch}{marks["realtime"]},
       {realtime_row_columns_sql(dialect)},
       {marks["deltas"]}, d.*, {marks["support"]}, sp.*, {marks["end"]},
       {listed}({_CUTOFF}) AS cutoff_at, ({decisions}) AS consent_decisions,
       ({_PUBLISH}) AS publish_id
FROM person p
{batch_join}
LEFT JOIN realtime_state r ON r.person_id = p.person_id
LEFT JOIN ({ORDER_DELTAS_FOR_PERSON}) d ON 1 = 1
LEFT JOIN ({SUPPORT_FOR_PERSON}) sp ON 1 = 1
WHERE p.person_id = :person_id
"""


def _read_of(
    person_id: str, redirected_from: str | None, parts: Parts, now: dt.datetime, explain: bool
) -> tuple[Row, Decision | None, int | None]:
    """A read's answer, its consent decision since the batch and the publish that served."""
    return unified(person_id, redirected_from, parts, now, explain), parts.consent, parts.publish_id


def _by_identifier_sql(parts_sql: str) -> str:
    """A whole read's statement with its person found by identifier (``:t``, ``:v``)."""
    return _WITH_FOUND + "\n" + re.sub(r":person_id\b", _FOUND, parts_sql)


def _newest_decision(rows: list[list[Any]]) -> Decision | None:
    """The newest of a person's consent decisions since the batch, from rows of
    (person id, consent, decided at, source)."""
    return next(iter(consent.decisions(rows).values()), None)


def _split(names: tuple[str, ...], convert: Converters) -> list[PartLayout]:
    """The parts of a row of :func:`_in_one_row_sql` with columns ``names``: the person's
    first, then one after each marker column, named by it."""
    marks = [
        (i, name.removeprefix(_MARK)) for i, name in enumerate(names) if name.startswith(_MARK)
    ]
    layout = []
    for (at, part), (end, _) in zip(
        [(-1, "person"), *marks], [*marks, (len(names), "")], strict=True
    ):
        columns = names[at + 1 : end]
        converters = [(name, convert[name]) for name in columns if name in convert]
        layout.append((part, at + 1, columns, converters))
    return layout


def _without_id(row: Row) -> Row:
    """A copy of ``row`` without its ``person_id`` (a dict copy is C; a comprehension is not)."""
    copy = dict(row)
    copy.pop("person_id", None)
    return copy


def unified(
    person_id: str, redirected_from: str | None, parts: Parts, now: dt.datetime, explain: bool
) -> dict[str, Any]:
    """One person's answer: the golden record, identifiers, the unified profile (batch features
    merged with the speed layer's facts, then the real-time features), the two layers as they
    are, and with ``explain`` each field's provenance."""
    person, batch, identifiers, realtime, deltas, support, cutoff, _, _ = parts
    batch_values, live = _without_id(batch), _without_id(realtime)
    last = live.get("last_event_at")
    live["time_since_last_event_seconds"] = (now - last).total_seconds() if last else None
    open_tickets = int(support["open_ticket_count"] or 0) if support else 0
    live["open_ticket_count"] = open_tickets
    for name in ("orders_since_cutoff", "spend_since_cutoff"):
        live[name] = deltas.get(name)
    facts = {
        **{k: deltas.get(k) for k in ("orders_since_cutoff", "spend_since_cutoff")},
        "first_order_at": deltas.get("first_order_at"),
        "last_order_at": deltas.get("last_order_at"),
        "last_event_at": last,
        "open_ticket_count": open_tickets,
        "has_support_state": support is not None,
    }
    profile = merge.merge(batch_values, facts, now.date())
    for name in merge.REALTIME_NAMES:
        profile[name] = live.get(name)
    merged_open = profile.get("open_support_tickets")
    profile["has_open_support_ticket"] = bool(merged_open) if merged_open is not None else False
    live["has_open_support_ticket"] = open_tickets > 0
    answer = {
        "person_id": person_id,
        "redirected_from": redirected_from,
        "person": _without_id(person),
        "identifiers": identifiers,
        "profile": profile,
        "batch": batch_values,
        "realtime": live,
    }
    if explain:
        answer["provenance"] = merge.provenance(profile, facts, cutoff, now)
    return answer
