"""librdkafka's built-in mock Kafka cluster, for the ``kafka`` tests: no broker to install.

The mock runs inside this process (threads of librdkafka, a TCP listener per broker on
127.0.0.1), speaks the Kafka protocol and handles produce, fetch, list-offsets, metadata and
classic consumer groups (join, sync, heartbeat, session timeouts), so clients in *other*
processes can use it too. It has no admin API (``CreateTopics`` times out waiting for a
controller) and auto-creates unknown topics with 4 partitions.

confluent-kafka does not expose the mock's C API, so :class:`MockCluster` calls it through
``ctypes`` on the librdkafka that confluent-kafka ships: that is how a topic gets any other
partition count (:meth:`MockCluster.create_topic`) and how a broker is taken down.

Test modules wrap :func:`mock_cluster` in a fixture of the scope of their choice, declared with
``service_fixture("kafka", …)`` (``tests/plugins/services.py``), and mark the tests ``kafka``: the
plugin checks that confluent-kafka is installed (skip on a laptop, fail under ``CI=true``) before
the fixture runs, so a mock that does not start is an error here, never a skip.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from pathlib import Path


def _librdkafka() -> ctypes.CDLL:
    """The librdkafka confluent-kafka loaded (bundled with the wheel), else the system's."""
    import confluent_kafka

    package = Path(confluent_kafka.__file__).parent
    candidates = [
        *sorted(package.parent.glob("confluent_kafka.libs/librdkafka*.so*")),  # Linux wheels
        *sorted(package.glob(".dylibs/librdkafka*.dylib")),  # macOS wheels
    ]
    if not candidates and (system := ctypes.util.find_library("rdkafka")):
        candidates.append(Path(system))
    if not candidates:
        raise OSError(f"no librdkafka found next to {package} nor on the system")
    lib = ctypes.CDLL(str(candidates[0]))
    pointer, text, integer = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    signatures: dict[str, tuple[list[type], type | None]] = {
        "rd_kafka_conf_new": ([], pointer),
        "rd_kafka_conf_set": ([pointer, text, text, text, ctypes.c_size_t], integer),
        "rd_kafka_new": ([integer, pointer, text, ctypes.c_size_t], pointer),
        "rd_kafka_destroy": ([pointer], None),
        "rd_kafka_mock_cluster_new": ([pointer, integer], pointer),
        "rd_kafka_mock_cluster_destroy": ([pointer], None),
        "rd_kafka_mock_cluster_bootstraps": ([pointer], text),
        "rd_kafka_mock_topic_create": ([pointer, text, integer, integer], integer),
        "rd_kafka_mock_broker_set_down": ([pointer, ctypes.c_int32], integer),
        "rd_kafka_mock_broker_set_up": ([pointer, ctypes.c_int32], integer),
        "rd_kafka_mock_group_initial_rebalance_delay_ms": ([pointer, ctypes.c_int32], None),
    }
    for name, (argtypes, restype) in signatures.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = restype
    return lib


class MockCluster:
    """A mock Kafka cluster of ``brokers`` brokers (ids 1..brokers), alive until :meth:`close`."""

    def __init__(self, brokers: int = 3) -> None:
        self.brokers = brokers
        self._lib = _librdkafka()
        errors = ctypes.create_string_buffer(512)
        conf = self._lib.rd_kafka_conf_new()
        self._lib.rd_kafka_conf_set(conf, b"log_level", b"3", errors, len(errors))
        # The handle that owns the mock cluster's thread; it connects to nothing itself.
        self._handle = self._lib.rd_kafka_new(0, conf, errors, len(errors))  # 0: producer
        if not self._handle:
            raise OSError(f"rd_kafka_new failed: {errors.value.decode()}")
        self._cluster = self._lib.rd_kafka_mock_cluster_new(self._handle, brokers)
        if not self._cluster:
            self._lib.rd_kafka_destroy(self._handle)
            raise OSError("rd_kafka_mock_cluster_new failed")
        self.bootstrap_servers: str = self._lib.rd_kafka_mock_cluster_bootstraps(
            self._cluster
        ).decode()

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap_servers}"

    def create_topic(self, topic: str, partitions: int, replication_factor: int = 3) -> None:
        error = self._lib.rd_kafka_mock_topic_create(
            self._cluster, topic.encode(), partitions, min(replication_factor, self.brokers)
        )
        if error:
            raise RuntimeError(f"mock topic {topic!r} not created: librdkafka error {error}")

    def initial_rebalance_delay(self, milliseconds: int) -> None:
        """How long a new group waits for more members before its first assignment (3 s)."""
        self._lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._cluster, milliseconds)

    def broker_down(self, broker: int) -> None:
        """Close the broker's connections and refuse new ones (until :meth:`broker_up`)."""
        self._lib.rd_kafka_mock_broker_set_down(self._cluster, broker)

    def broker_up(self, broker: int) -> None:
        self._lib.rd_kafka_mock_broker_set_up(self._cluster, broker)

    def close(self) -> None:
        if self._cluster:
            self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
            self._cluster = None
        if self._handle:
            self._lib.rd_kafka_destroy(self._handle)
            self._handle = None


def mock_cluster(brokers: int = 3) -> Iterator[MockCluster]:
    """The body of a ``kafka_cluster`` fixture: a running mock cluster, destroyed afterwards."""
    cluster = MockCluster(brokers)
    try:
        yield cluster
    finally:
        cluster.close()
