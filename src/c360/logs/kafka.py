"""The Kafka event log: ``kafka://HOST:PORT[,HOST:PORT][?PARAM=VALUE&...]``.

The only module of c360 that imports ``confluent_kafka`` (lazily: without it, opening a Kafka log
raises :class:`~c360.errors.MissingDependencyError`). Driver errors are classified here, once:
broker and transport failures become :class:`~c360.errors.TransientError`, bad configuration
:class:`~c360.errors.ConfigError`, refused credentials or ACLs :class:`~c360.errors.TerminalError`;
messages name the topic, partition and offset. No driver exception leaves an interface method:
each is classified where it is caught, and a backstop around every interface method classifies
any a closer handler did not expect.

**Clients.** One :class:`KafkaLog` holds up to three kinds of librdkafka clients, each created on
first use:

- an *idempotent producer* (``enable.idempotence``, ``acks=all``) for :meth:`~KafkaLog.append`.
  Every record goes to the explicit partition :func:`~c360.logs.base.partition_for` (CRC-32 of
  the key modulo the partition count), so the local log and Kafka place keys alike. An append
  ``flush()`` es and checks every delivery report: any failed record raises a ``TransientError``
  naming its topic/partition (the others of the call were written; a retry appends them again
  and the speed layer drops the duplicates by ``messageId``).
- a *reader*: a consumer that is only ever ``assign()`` ed, never subscribed; it never joins a
  group and never commits. :meth:`~KafkaLog.read` first asks the partition's watermarks, returns
  ``[]`` at the end without waiting, and otherwise assigns the one partition at the wanted
  offset, fetches at most the records that exist (so it never waits for records to arrive) and
  unassigns it, so nothing is fetched between reads. A read costs one fetch round trip
  (``fetch.wait.max.ms`` is 10 ms, the most an earlier fetch on the same broker can delay it).
- one *group member* per consumer group, for :meth:`~KafkaLog.owned_partitions`: a consumer that
  ``subscribe()`` s to the topics with ``enable.auto.commit=false`` and serves the rebalance
  callbacks. It is used for membership only: every partition it is assigned is paused at once,
  so it fetches nothing, and it never commits (the speed layer keeps its offsets in the serving
  store, in the same transaction as the state they produced). Reads go through the reader.

**Rebalancing.** Group membership is Kafka's: the worker calls ``owned_partitions`` before every
micro-batch, which polls the member (serving ``on_assign``/``on_revoke``/``on_lost``) and returns
the current assignment. Heartbeats run in librdkafka's background thread; a member whose process
dies stops heartbeating and the coordinator hands its partitions to the others after
``session_timeout_ms``. The assignment strategy is the eager ``roundrobin``: a rebalance revokes
every partition, so until the new assignment arrives ``owned_partitions`` returns ``[]`` and the
worker polls again. Only the first call waits, up to ``timeout_ms``, for the first assignment
(else a ``TransientError``), so ``stream run --once`` has partitions to catch up on. Rebalance
callbacks run only inside a poll: a member busy with a long micro-batch holds a rebalance up for
the whole group until its next call (a broker drops it after ``max.poll.interval.ms``, 5
minutes). A slow member may still be finishing a batch of a partition that has moved; the
serving store's compare-and-set on the offsets fences it.

**Topics.** :meth:`~KafkaLog.partitions` reads the cluster metadata without creating anything;
a topic that does not exist yet answers the configured default (``log.partitions``), as the local
log would create it. The first ``append`` to a missing topic creates it: with the admin API and
the default partition count when the cluster names a reachable controller, otherwise (a cluster
without the admin API, e.g. librdkafka's mock cluster) through the broker's auto-creation, which
uses the *broker's* default count (``num.partitions``). Either way keys are then placed by the
topic's actual count, which every client reads from the metadata; a count that differs from
``log.partitions`` is logged as a warning. Create production topics ahead of time.

**URL parameters** (all optional, integers in milliseconds):

- ``session_timeout_ms`` (45000): how long the coordinator waits for a silent member before
  moving its partitions (e.g. 6000 in tests);
- ``heartbeat_interval_ms`` (3000): how often members heartbeat; below ``session_timeout_ms``;
- ``timeout_ms`` (30000): the longest one log operation waits on the cluster (metadata,
  watermarks, delivery of an append, a fetch, the first group join) before a ``TransientError``.

Record timestamps are the Kafka message timestamps (the producer's create time unless the topic
uses log-append time), as UTC datetimes with millisecond precision.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from c360.contracts.log import RecordBatch, TopicPartition
from c360.errors import (
    C360Error,
    ConfigError,
    MissingDependencyError,
    NotFoundError,
    TerminalError,
    TransientError,
)
from c360.logs.base import EventLog, LogErasure, RecordMatch, check_topic, partition_for
from c360.masking import mask_secrets

if TYPE_CHECKING:
    from types import ModuleType

    import confluent_kafka

logger = logging.getLogger(__name__)
_librdkafka_logger = logging.getLogger(f"{__name__}.librdkafka")

SCHEME = "kafka://"
_ASSIGNMENT_STRATEGY = "roundrobin"
_POLL_STEP_S = 0.1  # the longest single wait inside a bounded loop
DEFAULT_SESSION_TIMEOUT_MS = 45_000
DEFAULT_HEARTBEAT_INTERVAL_MS = 3_000
DEFAULT_TIMEOUT_MS = 30_000


def _driver() -> ModuleType:
    """``confluent_kafka``, imported on first use (the ``kafka`` extra)."""
    try:
        import confluent_kafka
        import confluent_kafka.admin
    except ImportError as exc:
        raise MissingDependencyError("confluent-kafka", "kafka", "the Kafka event log") from exc
    return confluent_kafka


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """What a ``kafka://`` URL says (see the module docstring for the parameters)."""

    bootstrap_servers: str
    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS
    heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    def __post_init__(self) -> None:
        for name in ("session_timeout_ms", "heartbeat_interval_ms", "timeout_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError("log.url", f"{name} must be a positive integer, got {value!r}")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ConfigError(
                "log.url",
                f"heartbeat_interval_ms ({self.heartbeat_interval_ms}) must be below "
                f"session_timeout_ms ({self.session_timeout_ms}); e.g. a third of it",
            )

    @classmethod
    def from_url(cls, url: str) -> KafkaSettings:
        """Parse ``kafka://HOST:PORT[,HOST:PORT][?session_timeout_ms=…&…]``."""
        example = "e.g. kafka://broker1:9092,broker2:9092?session_timeout_ms=10000"
        shown = mask_secrets(url)  # credentials belong in log.kafka_properties, never in a message
        if not url.startswith(SCHEME):
            raise ConfigError("log.url", f"{shown!r} is not a kafka:// URL; {example}")
        parts = urlsplit(url)
        if parts.path not in ("", "/") or parts.fragment:
            raise ConfigError("log.url", f"{shown!r}: a Kafka URL names brokers only; {example}")
        if "@" in parts.netloc:
            raise ConfigError(
                "log.url",
                f"{shown!r}: credentials do not go in the URL; set sasl.username and "
                "sasl.password in log.kafka_properties (C360_LOG_KAFKA_PROPERTIES)",
            )
        servers = [server.strip() for server in parts.netloc.split(",")]
        for server in servers:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError("log.url", f"{shown!r}: {server!r} is not HOST:PORT; {example}")
        try:
            params = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            params = [] if not parts.query else [("", parts.query)]
        accepted = ("session_timeout_ms", "heartbeat_interval_ms", "timeout_ms")
        values: dict[str, int] = {}
        for name, value in params:
            if name not in accepted:
                raise ConfigError(
                    "log.url",
                    f"{shown!r}: unknown parameter {name!r}; accepted: {', '.join(accepted)}",
                )
            if not value.isdigit():
                raise ConfigError(
                    "log.url", f"{shown!r}: {name} must be a positive integer, got {value!r}"
                )
            values[name] = int(value)
        return cls(bootstrap_servers=",".join(servers), **values)


def _kafka_error(exc: BaseException) -> confluent_kafka.KafkaError | None:
    """The ``KafkaError`` inside a driver exception, if there is one."""
    ck = _driver()
    if isinstance(exc, ck.KafkaException) and exc.args and isinstance(exc.args[0], ck.KafkaError):
        error: confluent_kafka.KafkaError = exc.args[0]
        return error
    return None


def classify(
    error: confluent_kafka.KafkaError | None, message: str, config_key: str = "log.url"
) -> C360Error:
    """The c360 error for a driver error: what to retry, what to fix.

    Bad configuration (an invalid client property) is a :class:`ConfigError`; refused
    credentials or ACLs a :class:`TerminalError`; everything else a broker or the network did (a
    timeout, a broker down, a leader moving, a fatal idempotent-producer state that a new
    producer clears) is a :class:`TransientError`. ``config_key`` is the setting a
    :class:`ConfigError` names.
    """
    ck = _driver()
    code = None if error is None else error.code()
    detail = message if error is None else f"{message}: {error.str()}"
    if code in {ck.KafkaError._INVALID_ARG, ck.KafkaError._NOT_IMPLEMENTED}:
        return ConfigError(config_key, detail)
    if code in {
        ck.KafkaError._AUTHENTICATION,
        ck.KafkaError.SASL_AUTHENTICATION_FAILED,
        ck.KafkaError.TOPIC_AUTHORIZATION_FAILED,
        ck.KafkaError.GROUP_AUTHORIZATION_FAILED,
        ck.KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    }:
        return TerminalError(f"{detail} (check the Kafka credentials and ACLs)")
    if code in {ck.KafkaError._UNSUPPORTED_FEATURE, ck.KafkaError.UNSUPPORTED_VERSION}:
        return TerminalError(f"{detail} (the brokers do not support this request)")
    return TransientError(detail)


class _GroupMember:
    """This process's membership in one consumer group: assignment only, no fetching."""

    def __init__(
        self,
        ck: ModuleType,
        config: dict[str, Any],
        group: str,
        topics: tuple[str, ...],
        last_problem: Callable[[], str | None],
    ) -> None:
        self.group = group
        self.topics = topics
        self._last_problem = last_problem  # the client-wide error callback's latest
        self._assigned: list[TopicPartition] = []
        self._joined = False  # an assignment has arrived at least once
        self._problem: str | None = None  # the last error the consumer reported
        self.consumer: confluent_kafka.Consumer = ck.Consumer(config)
        try:
            self.consumer.subscribe(
                list(topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
        except BaseException:
            self.consumer.close()
            raise

    # librdkafka calls these from inside poll(), on this thread.
    def _on_assign(
        self, consumer: confluent_kafka.Consumer, partitions: list[confluent_kafka.TopicPartition]
    ) -> None:
        consumer.assign(partitions)
        if partitions:
            consumer.pause(partitions)  # membership only: the reader fetches
        self._assigned = sorted(TopicPartition(tp.topic, tp.partition) for tp in partitions)
        self._joined = True
        logger.info(
            "consumer group %r: assigned %s",
            self.group,
            ", ".join(f"{tp.topic}/{tp.partition}" for tp in self._assigned) or "nothing",
        )

    def _on_revoke(
        self, consumer: confluent_kafka.Consumer, partitions: list[confluent_kafka.TopicPartition]
    ) -> None:
        consumer.unassign()
        self._assigned = []
        logger.info("consumer group %r: partitions revoked (rebalance)", self.group)

    def _on_lost(
        self, consumer: confluent_kafka.Consumer, partitions: list[confluent_kafka.TopicPartition]
    ) -> None:
        consumer.unassign()
        self._assigned = []
        logger.warning(
            "consumer group %r: assignment lost (session or poll interval expired)", self.group
        )

    def _serve(self, timeout_s: float) -> None:
        """Serve rebalance callbacks and errors; the paused partitions yield no records."""
        message = self.consumer.poll(timeout_s)
        while message is not None:
            error = message.error()
            if error is not None:
                self._problem = error.str()
                logger.warning("consumer group %r: %s", self.group, self._problem)
                if error.fatal():
                    raise classify(error, f"consumer group {self.group!r}")
            message = self.consumer.poll(0)

    def assignment(self, timeout_s: float) -> list[TopicPartition]:
        """The current assignment; the first call waits (bounded) for the first one.

        Later calls never wait: during a rebalance they return ``[]`` (the eager protocol
        revokes everything first) and the caller polls again. Waiting there would stall the
        rebalance for any other member this process polls.
        """
        deadline = time.monotonic() + timeout_s
        self._serve(0)
        while not self._joined:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                last = self._problem or self._last_problem()
                problem = f" (last error: {last})" if last else ""
                raise TransientError(
                    f"consumer group {self.group!r} got no assignment of "
                    f"{', '.join(self.topics)} within {timeout_s:g}s{problem}: "
                    "is the cluster reachable?"
                )
            self._serve(min(remaining, _POLL_STEP_S))
        return list(self._assigned)

    def close(self) -> None:
        """Leave the group now (the others rebalance at once, not after a session timeout)."""
        self.consumer.close()


class KafkaLog(EventLog):
    """The event log on a Kafka cluster (see the module docstring)."""

    def __init__(
        self,
        bootstrap_servers: str,
        partitions: int,
        *,
        session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        if partitions < 1:
            raise ConfigError("log.partitions", f"must be >= 1, got {partitions}")
        self.settings = KafkaSettings(
            bootstrap_servers, session_timeout_ms, heartbeat_interval_ms, timeout_ms
        )
        self.default_partitions = partitions
        self._properties = dict(properties or {})  # log.kafka_properties: security, tuning
        self._ck = _driver()
        self._timeout_s = timeout_ms / 1000
        self._lock = threading.RLock()  # one operation at a time: the clients' state is shared
        self._closed = False
        self._producer: confluent_kafka.Producer | None = None
        self._reader: confluent_kafka.Consumer | None = None
        self._members: dict[str, _GroupMember] = {}
        self._counts: dict[str, int] = {}  # partition counts of topics known to exist
        self._problem: str | None = None  # the last client-wide error (e.g. brokers down)

    @classmethod
    def from_url(
        cls, url: str, partitions: int, properties: Mapping[str, str] | None = None
    ) -> KafkaLog:
        settings = KafkaSettings.from_url(url)
        return cls(
            settings.bootstrap_servers,
            partitions,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            timeout_ms=settings.timeout_ms,
            properties=properties,
        )

    def __repr__(self) -> str:
        servers, count = self.settings.bootstrap_servers, self.default_partitions
        return f"KafkaLog({servers!r}, partitions={count})"

    # -- clients -----------------------------------------------------------------------------
    def _on_error(self, error: confluent_kafka.KafkaError) -> None:
        # librdkafka retries these itself and logs them (through the librdkafka logger); keep
        # the last one for the message of the TransientError an operation may end with.
        self._problem = error.str()
        logger.debug("kafka %s: %s", self.settings.bootstrap_servers, self._problem)

    def _config(self, **specific: Any) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.settings.bootstrap_servers,
            "client.id": "c360",
            "logger": _librdkafka_logger,
            "error_cb": self._on_error,
            **specific,
            **self._properties,  # the keys c360 relies on are refused by the config
        }

    def _client(self, kind: str, config: dict[str, Any]) -> Any:
        try:
            return getattr(self._ck, kind)(config)
        except (self._ck.KafkaException, ValueError, TypeError) as exc:
            error = _kafka_error(exc)
            key = "log.kafka_properties" if self._properties else "log.url"
            if error is None:  # the client rejected a property before connecting
                raise ConfigError(key, f"invalid Kafka {kind} settings: {exc}") from exc
            raise classify(error, f"cannot create a Kafka {kind}", key) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise TerminalError(f"the event log at {self.settings.bootstrap_servers} is closed")

    def _get_producer(self) -> confluent_kafka.Producer:
        if self._producer is None:
            self._producer = self._client(
                "Producer",
                self._config(
                    **{
                        "enable.idempotence": True,
                        "acks": "all",
                        "message.timeout.ms": self.settings.timeout_ms,
                        "linger.ms": 5,
                    }
                ),
            )
        return self._producer

    def _discard_producer(self) -> None:
        """Drop a producer in a fatal state; the next append creates a new one."""
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.purge()
            producer.close()

    def _get_reader(self) -> confluent_kafka.Consumer:
        if self._reader is None:
            self._reader = self._client(
                "Consumer",
                self._config(
                    **{
                        # Required by the client; this consumer is only assigned partitions,
                        # never joins the group and never commits.
                        "group.id": f"c360-reader-{uuid.uuid4().hex}",
                        "enable.auto.commit": False,
                        "enable.auto.offset.store": False,
                        "auto.offset.reset": "error",
                        "enable.partition.eof": False,
                        "fetch.wait.max.ms": 10,
                        "allow.auto.create.topics": False,
                    }
                ),
            )
        return self._reader

    # -- metadata ----------------------------------------------------------------------------
    def _existing_partitions(self, topic: str) -> int | None:
        """The partition count of ``topic`` from the cluster, or None if it does not exist."""
        known = self._counts.get(topic)
        if known is not None:
            return known
        try:
            metadata = self._get_reader().list_topics(topic, timeout=self._timeout_s)
        except self._ck.KafkaException as exc:
            error = _kafka_error(exc)
            raise classify(error, f"cannot read the metadata of topic {topic!r}") from exc
        described = metadata.topics.get(topic)
        if described is None:
            return None
        if described.error is not None and not described.partitions:
            if described.error.code() == self._ck.KafkaError.UNKNOWN_TOPIC_OR_PART:
                return None
            raise classify(described.error, f"cannot read the metadata of topic {topic!r}")
        count = len(described.partitions)
        self._counts[topic] = count
        return count

    def _partition_count(self, topic: str, partition: int) -> int | None:
        """Check ``partition`` against the topic (the default count if it does not exist yet);
        return the topic's count, or None if it does not exist."""
        existing = self._existing_partitions(check_topic(topic))
        count = self.default_partitions if existing is None else existing
        if not 0 <= partition < count:
            raise NotFoundError(
                f"topic {topic!r} has partitions 0..{count - 1}; there is no partition {partition}"
            )
        return existing

    def _create_topic(self, topic: str) -> int:
        """Create a missing topic (see "Topics" in the module docstring); its partition count."""
        wanted = self.default_partitions
        try:
            cluster = self._get_reader().list_topics(timeout=self._timeout_s)
        except self._ck.KafkaException as exc:
            raise classify(_kafka_error(exc), f"cannot read the metadata of {self!r}") from exc
        if cluster.controller_id in cluster.brokers:
            self._create_with_admin(topic, wanted)
        else:  # no admin API (e.g. librdkafka's mock cluster): the broker auto-creates
            try:
                self._get_producer().list_topics(topic, timeout=self._timeout_s)
            except self._ck.KafkaException as exc:
                raise classify(_kafka_error(exc), f"cannot create topic {topic!r}") from exc
        deadline = time.monotonic() + self._timeout_s
        while (count := self._existing_partitions(topic)) is None:
            if time.monotonic() > deadline:
                raise ConfigError(
                    "log.url",
                    f"topic {topic!r} does not exist on {self.settings.bootstrap_servers} and "
                    f"the cluster did not create it: create it with {wanted} partitions "
                    f"(kafka-topics.sh --create --topic {topic} --partitions {wanted})",
                )
            time.sleep(_POLL_STEP_S)
        if count != wanted:
            logger.warning(
                "topic %r was created with the broker's default of %d partitions, not "
                "log.partitions = %d; keys are placed by its %d partitions",
                topic,
                count,
                wanted,
                count,
            )
        else:
            logger.info("created topic %r with %d partitions", topic, count)
        return count

    def _create_with_admin(self, topic: str, partitions: int) -> None:
        admin = self._client("AdminClient", self._config())
        new = self._ck.admin.NewTopic(topic, num_partitions=partitions, replication_factor=-1)
        try:
            futures = admin.create_topics([new], request_timeout=self._timeout_s)
            futures[topic].result(timeout=self._timeout_s + 5)
        except self._ck.KafkaException as exc:
            error = _kafka_error(exc)
            if error is None or error.code() != self._ck.KafkaError.TOPIC_ALREADY_EXISTS:
                raise classify(error, f"cannot create topic {topic!r}") from exc
        except TimeoutError as exc:  # concurrent.futures' (the builtin since Python 3.11)
            raise TransientError(
                f"cannot create topic {topic!r}: the cluster did not answer within "
                f"{self._timeout_s + 5:g}s ({self._problem or 'no error reported'})"
            ) from exc

    @contextmanager
    def _classified(self, what: str) -> Iterator[None]:
        """The backstop of the interface methods: a driver error no closer handler classified
        (say, a failed ``close()`` of a group member) leaves as a c360 error too."""
        try:
            yield
        except self._ck.KafkaException as exc:
            raise classify(_kafka_error(exc), what) from exc

    # -- the interface -----------------------------------------------------------------------
    def partitions(self, topic: str) -> int:
        with self._lock, self._classified(f"cannot read the metadata of topic {topic!r}"):
            self._check_open()
            existing = self._existing_partitions(check_topic(topic))
            return self.default_partitions if existing is None else existing

    def append(self, topic: str, records: Sequence[tuple[str, bytes]]) -> list[tuple[int, int]]:
        with self._lock, self._classified(f"cannot append to topic {topic!r}"):
            self._check_open()
            check_topic(topic)
            if not records:
                return []
            count = self._existing_partitions(topic) or self._create_topic(topic)
            producer = self._get_producer()
            reports: list[tuple[int, int] | confluent_kafka.KafkaError | None]
            reports = [None] * len(records)

            def delivered(
                index: int, error: confluent_kafka.KafkaError | None, message: Any
            ) -> None:
                if error is not None:
                    reports[index] = error
                else:
                    reports[index] = (message.partition(), message.offset())

            for index, (key, value) in enumerate(records):
                partition = partition_for(key, count)
                self._produce(
                    producer, topic, partition, key, value, functools.partial(delivered, index)
                )
            # Every record gets a report within message.timeout.ms (= timeout_ms).
            try:
                unreported = producer.flush(self._timeout_s + 5)
            except self._ck.KafkaException as exc:
                error = _kafka_error(exc)
                if error is not None and error.fatal():
                    self._discard_producer()
                raise classify(error, f"cannot deliver the records to topic {topic!r}") from exc
            if unreported:
                raise TransientError(
                    f"{unreported} of {len(records)} records to topic {topic!r} were not "
                    f"acknowledged within {self._timeout_s + 5:g}s "
                    f"({self._problem or 'no error reported'}); retry the append"
                )
            return self._positions(topic, count, records, reports)

    def _produce(
        self,
        producer: confluent_kafka.Producer,
        topic: str,
        partition: int,
        key: str,
        value: bytes | None,
        callback: Any,
    ) -> None:
        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                producer.produce(
                    topic,
                    value=value,
                    key=key.encode("utf-8"),
                    partition=partition,
                    on_delivery=callback,
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                if time.monotonic() > deadline:
                    raise TransientError(
                        f"the producer queue for {topic}/{partition} stayed full for "
                        f"{self._timeout_s:g}s ({self._problem or 'brokers slow'})"
                    ) from None
                producer.poll(_POLL_STEP_S)
            except self._ck.KafkaException as exc:
                raise classify(_kafka_error(exc), f"cannot produce to {topic}/{partition}") from exc

    def _positions(
        self,
        topic: str,
        count: int,
        records: Sequence[tuple[str, bytes]],
        reports: Sequence[tuple[int, int] | confluent_kafka.KafkaError | None],
    ) -> list[tuple[int, int]]:
        positions: list[tuple[int, int]] = []
        failed: dict[int, confluent_kafka.KafkaError] = {}
        for (key, _), report in zip(records, reports, strict=True):
            if isinstance(report, tuple):
                positions.append(report)
            else:
                assert report is not None  # flush() returned 0: every record was reported
                failed.setdefault(partition_for(key, count), report)
        if not failed:
            return positions
        if any(error.fatal() for error in failed.values()):
            self._discard_producer()
        where = ", ".join(f"{topic}/{p}" for p in sorted(failed))
        first = failed[min(failed)]
        error = classify(
            first,
            f"{len(records) - len(positions)} of {len(records)} records were not written to "
            f"{where} ({len(positions)} were: a retry of the append writes those again)",
        )
        raise error

    def erase(self, topic: str, match: RecordMatch) -> LogErasure:
        """Tombstone the keys of the records ``match`` picks: a null value per key, to the
        key's partition. A broker cannot delete a record in place: on a compacted topic
        (``cleanup.policy=compact``) the log cleaner then removes every earlier record of the
        key and, after ``delete.retention.ms``, the tombstone itself; on a ``delete`` topic the
        records go when ``retention.ms`` passes. Either way the removal is ``pending`` on the
        broker, and readers skip tombstones (:func:`~c360.logs.base.is_tombstone`)."""
        matched: dict[tuple[int, bytes], int] = {}
        for partition in range(self.partitions(topic)):
            offset = 0
            while True:
                with self._lock, self._classified(f"cannot read {topic}/{partition}"):
                    self._check_open()
                    if self._partition_count(topic, partition) is None:
                        break
                    low, high = self._watermarks(topic, partition)
                offset = max(offset, low)
                if offset >= high:
                    break
                batch = self.read_batch(topic, partition, offset, 10_000)
                for key, value in zip(batch.keys, batch.values, strict=True):
                    if value and match(key, value):
                        matched[partition, key] = matched.get((partition, key), 0) + 1
                offset = batch.next_offset
        if matched:
            self._tombstone(topic, list(matched))
        return LogErasure(
            topic, records=sum(matched.values()), tombstones=len(matched), pending=bool(matched)
        )

    def _tombstone(self, topic: str, keys: Sequence[tuple[int, bytes]]) -> None:
        with self._lock, self._classified(f"cannot tombstone records of topic {topic!r}"):
            producer = self._get_producer()
            failed: list[Any] = []

            def delivered(error: confluent_kafka.KafkaError | None, _: Any) -> None:
                if error is not None:
                    failed.append(error)

            for partition, key in keys:
                self._produce(producer, topic, partition, key.decode("utf-8"), None, delivered)
            unreported = producer.flush(self._timeout_s + 5)
            if failed or unreported:
                raise classify(
                    failed[0] if failed else None,
                    f"{len(failed) + unreported} tombstones of topic {topic!r} were not "
                    "acknowledged; run the erasure again",
                )

    def read_batch(self, topic: str, partition: int, offset: int, max_records: int) -> RecordBatch:
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        with self._lock, self._classified(f"cannot read {topic}/{partition} at offset {offset}"):
            self._check_open()
            if self._partition_count(topic, partition) is None or max_records <= 0:
                return RecordBatch(topic, partition)
            low, high = self._watermarks(topic, partition)
            if offset >= high:
                return RecordBatch(topic, partition)
            if offset < low:
                raise TerminalError(
                    f"{topic}/{partition}: records before offset {low} were deleted "
                    f"(retention); offset {offset} can no longer be read"
                )
            return self._fetch(topic, partition, offset, min(max_records, high - offset), high)

    def _fetch(
        self, topic: str, partition: int, offset: int, wanted: int, high: int
    ) -> RecordBatch:
        """``wanted`` records (known to exist) from ``offset``, or fewer after ``timeout_ms``."""
        reader = self._get_reader()
        where = f"cannot read {topic}/{partition} at offset {offset}"
        try:
            reader.assign([self._ck.TopicPartition(topic, partition, offset)])
        except self._ck.KafkaException as exc:
            raise classify(_kafka_error(exc), where) from exc
        try:
            return self._consume(reader, topic, partition, offset, wanted, high)
        finally:
            try:
                reader.unassign()  # no fetching between reads
            except self._ck.KafkaException as exc:  # the next assign() replaces it anyway
                logger.warning("%s: unassign failed: %s", where, exc)

    def _consume(
        self,
        reader: confluent_kafka.Consumer,
        topic: str,
        partition: int,
        offset: int,
        wanted: int,
        high: int,
    ) -> RecordBatch:
        offsets: list[int] = []
        keys: list[bytes] = []
        values: list[bytes] = []
        stamps: list[int] = []
        next_offset = offset
        deadline = time.monotonic() + self._timeout_s
        while len(values) < wanted:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                messages = reader.consume(wanted - len(values), min(remaining, 0.5))
            except self._ck.KafkaException as exc:
                raise classify(
                    _kafka_error(exc), f"cannot read {topic}/{partition} at offset {offset}"
                ) from exc
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == self._ck.KafkaError._AUTO_OFFSET_RESET:
                        raise TerminalError(
                            f"{topic}/{partition}: offset {next_offset} is out of range: "
                            f"{error.str()}"
                        )
                    raise classify(
                        error, f"cannot read {topic}/{partition} at offset {next_offset}"
                    )
                message_offset = message.offset()
                if (
                    message_offset is None
                    or message_offset < next_offset
                    or message.partition() != partition
                    or message.topic() != topic
                ):
                    continue  # left over from an earlier assignment
                key, value = message.key(), message.value()
                offsets.append(message_offset)
                keys.append(b"" if key is None else key)
                values.append(b"" if value is None else value)
                # A broker older than 0.10 has no timestamps (-1): the epoch stands in.
                stamps.append(max(message.timestamp()[1], 0))
                next_offset = message_offset + 1
            if next_offset >= high:
                break  # the end (a compacted topic has gaps in its offsets)
        if not values:
            raise TransientError(
                f"no record of {topic}/{partition} from offset {offset} arrived within "
                f"{self._timeout_s:g}s although the log holds records up to offset {high} "
                f"({self._problem or 'no error reported'})"
            )
        return RecordBatch(topic, partition, offsets, keys, values, stamps)

    def _watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        try:
            low, high = self._get_reader().get_watermark_offsets(
                self._ck.TopicPartition(topic, partition), timeout=self._timeout_s, cached=False
            )
        except self._ck.KafkaException as exc:
            raise classify(
                _kafka_error(exc), f"cannot read the offsets of {topic}/{partition}"
            ) from exc
        return int(low), int(high)

    def end_offset(self, topic: str, partition: int) -> int:
        with self._lock, self._classified(f"cannot read the end offset of {topic}/{partition}"):
            self._check_open()
            if self._partition_count(topic, partition) is None:
                return 0
            return self._watermarks(topic, partition)[1]

    # -- retention (c360.logs.base.Truncatable) ------------------------------------------------
    def offset_at(self, topic: str, partition: int, timestamp_ms: int) -> int:
        """The first offset whose timestamp is at or after ``timestamp_ms`` (ListOffsets by
        time), the end offset if none is."""
        what = f"cannot look up the offset of {topic}/{partition} by time"
        with self._lock, self._classified(what):
            self._check_open()
            wanted = self._ck.TopicPartition(topic, partition, timestamp_ms)
            found = self._get_reader().offsets_for_times([wanted], timeout=self._timeout_s)[0]
            if found.error is not None:
                raise classify(found.error, what)
            return int(found.offset) if found.offset >= 0 else self._watermarks(topic, partition)[1]

    def drop_before(self, topic: str, partition: int, offset: int) -> int:
        """DeleteRecords up to ``offset``: the log start moves there and the broker deletes the
        segments wholly below it. How many records were dropped."""
        what = f"cannot delete the records of {topic}/{partition} before offset {offset}"
        with self._lock, self._classified(what):
            self._check_open()
            low, high = self._watermarks(topic, partition)
            target = min(offset, high)
            if target <= low:
                return 0
            admin = self._ck.admin.AdminClient(self._config())
            request = [self._ck.TopicPartition(topic, partition, target)]
            futures = admin.delete_records(request, request_timeout=self._timeout_s)
            for future in futures.values():
                future.result(timeout=self._timeout_s + 5)
            return target - low

    def owned_partitions(self, group: str, topics: Sequence[str]) -> list[TopicPartition]:
        """This member's current share of ``topics`` in consumer group ``group``.

        The first call joins the group (and waits, up to ``timeout_ms``, for the first
        assignment); every call polls the membership, so a rebalance shows up on the next call.
        See the module docstring.
        """
        wanted = tuple(sorted({check_topic(topic) for topic in topics}))
        with self._lock, self._classified(f"consumer group {group!r}"):
            self._check_open()
            if not wanted:
                return []
            member = self._members.get(group)
            if member is not None and member.topics != wanted:
                del self._members[group]
                member.close()
                member = None
            if member is None:
                member = self._members[group] = self._join(group, wanted)
            try:
                return member.assignment(self._timeout_s)
            except self._ck.KafkaException as exc:
                raise classify(_kafka_error(exc), f"consumer group {group!r}") from exc

    def _join(self, group: str, topics: tuple[str, ...]) -> _GroupMember:
        config = self._config(
            **{
                "group.id": group,
                "enable.auto.commit": False,  # offsets live in the serving store
                "enable.auto.offset.store": False,
                "auto.offset.reset": "latest",  # never fetched: the partitions stay paused
                "partition.assignment.strategy": _ASSIGNMENT_STRATEGY,
                "session.timeout.ms": self.settings.session_timeout_ms,
                "heartbeat.interval.ms": self.settings.heartbeat_interval_ms,
                "max.poll.interval.ms": max(300_000, self.settings.session_timeout_ms),
                "topic.metadata.refresh.interval.ms": 10_000,  # notice new topics and partitions
                "allow.auto.create.topics": False,
            }
        )
        try:
            return _GroupMember(self._ck, config, group, topics, lambda: self._problem)
        except (self._ck.KafkaException, ValueError, TypeError) as exc:
            raise classify(_kafka_error(exc), f"cannot join consumer group {group!r}") from exc

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            members, self._members = list(self._members.values()), {}
            reader, self._reader = self._reader, None
            producer, self._producer = self._producer, None
        with ExitStack() as closing:  # close every client even if one fails
            if producer is not None:
                closing.callback(producer.close)
                closing.callback(producer.flush, self._timeout_s)
            if reader is not None:
                closing.callback(reader.close)
            for member in members:
                closing.callback(member.close)
