"""Benchmark the speed layer on Kafka: c360's worker (Kafka → PostgreSQL) against Quix Streams.

    .venv/bin/python bench/bench_stream_kafka.py --file data/clickstream.jsonl.gz [--limit N]

Both read the same simulator clickstream from one topic of librdkafka's mock cluster (in this
process, see ``tests/kafka_mock.py``), in the same run:

- **c360**: one ``c360.pipeline.stream_worker.run`` (a ``kafka://`` log, consumer group
  membership) into a fresh PostgreSQL database, every real-time feature on (sessions, product
  views, cart, last event, events in the last hour, orders), state and offsets committed
  together per batch;
- **Quix Streams**: an ``Application`` computing the same sessions — a session window per key
  with a 30-minute inactivity gap, on the event time of each message — counting the events of
  each session, its state in RocksDB, the current session of every key kept in a dict. Its
  changelog topics are off (the mock cluster has no admin API to create them) and its
  processing guarantee is its default, at-least-once.

Each side's time runs from its start (group join included) until every record is processed.
The last session of every key from Quix is checked against c360's ``realtime_state``. Prints
one JSON line; ``c360_over_quix`` is the throughput ratio. Needs PostgreSQL
(``--postgres``, default the test server) and ``pip install -e .[bench]`` (quixstreams).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from bench_stream import _lines
from c360.contracts.segment import routing_key
from c360.logs import partition_for
from c360.logs.kafka import KafkaLog
from c360.pipeline.stream_worker import DEFAULT_BATCH_SIZE, run
from c360.stores import open_store
from kafka_mock import MockCluster

TOPIC = "clickstream"
GAP_MS = 30 * 60 * 1000


def _database(url: str) -> tuple[str, Any]:
    """A fresh PostgreSQL database on the server of ``url``; (its URL, the admin engine)."""
    parsed = make_url(url).set(drivername="postgresql+psycopg")
    admin = create_engine(parsed, isolation_level="AUTOCOMMIT")
    name = f"c360_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return parsed.set(database=name).render_as_string(hide_password=False), admin


def _publish(cluster: MockCluster, values: list[bytes], partitions: int) -> float:
    """Produce the records keyed and partitioned as ``KafkaLog.append`` does, zstd-compressed:
    the mock cluster keeps only about 5 MB of stored batches per partition."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "compression.type": "zstd",
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "enable.idempotence": True,
        }
    )
    started = time.perf_counter()
    for value in values:
        key = routing_key(orjson.loads(value))
        while True:
            try:
                producer.produce(TOPIC, value, key.encode(), partition_for(key, partitions))
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(120):
        raise RuntimeError("the mock cluster did not take every record")
    seconds = time.perf_counter() - started
    with KafkaLog(cluster.bootstrap_servers, partitions) as log:
        for partition in range(partitions):
            low = log._watermarks(TOPIC, partition)[0]
            if low:
                raise SystemExit(
                    f"the mock cluster dropped the first {low} records of {TOPIC}/{partition}: "
                    "use fewer events (--limit) or more partitions (--partitions)"
                )
    return seconds


def _c360(cluster: MockCluster, url: str, partitions: int, batch_size: int) -> dict[str, Any]:
    store = open_store(url)
    store.migrate()
    try:
        kafka = f"{cluster.url}?timeout_ms=30000"
        started, cpu = time.perf_counter(), time.process_time()
        with KafkaLog.from_url(kafka, partitions) as log:
            stats = run(log, store, "c360-bench", [TOPIC], stop_when_caught_up=True,
                        batch_size=batch_size)  # fmt: skip
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        sessions = {
            row["id_value"]: (row["session_start"], row["session_last_event_at"])
            for row in store.query(
                "SELECT id_value, session_start, session_last_event_at FROM realtime_state "
                "WHERE id_type = 'anonymous_id'"
            )
        }
    finally:
        store.dispose()
    return {"records": stats.records, "seconds": seconds, "cpu_seconds": cpu,
            "batches": stats.batches, "sessions": sessions}  # fmt: skip


def _quix(cluster: MockCluster, records: int, state_dir: Path) -> dict[str, Any]:
    try:
        from quixstreams import Application
        from quixstreams.dataframe.windows.aggregations import Count
        from quixstreams.models.topics.admin import TopicAdmin
        from quixstreams.models.topics.topic import TopicConfig
    except ImportError:
        sys.exit("Quix Streams is not installed: pip install -e .[bench]")

    def inspect_topics(self: Any, topic_names: list[str], timeout: float = 30) -> dict[str, Any]:
        # The mock cluster has no controller, so no DescribeConfigs: answer from the metadata.
        cluster_topics = self.list_topics(timeout=timeout)
        return {
            name: TopicConfig(
                num_partitions=len(cluster_topics[name].partitions),
                replication_factor=len(cluster_topics[name].partitions[0].replicas),
                extra_config={"retention.ms": "-1", "retention.bytes": "-1"},
            )
            if name in cluster_topics
            else None
            for name in topic_names
        }

    TopicAdmin.inspect_topics = inspect_topics  # type: ignore[method-assign]

    def event_time(value: Any, headers: Any, timestamp: float, kind: Any) -> int:
        moment = dt.datetime.fromisoformat(value["timestamp"])
        return int(moment.timestamp() * 1000)

    app = Application(
        broker_address=cluster.bootstrap_servers,
        consumer_group=f"quix-bench-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        use_changelog_topics=False,
    )
    topic = app.topic(TOPIC, value_deserializer="json", timestamp_extractor=event_time)
    sdf = app.dataframe(topic)
    sdf = sdf.session_window(inactivity_gap_ms=GAP_MS).agg(events=Count()).current()
    last: dict[str, tuple[int, int]] = {}
    seen = [0]

    def keep(value: dict[str, Any], key: Any, timestamp: int, headers: Any) -> None:
        last[key.decode() if isinstance(key, bytes) else str(key)] = (
            value["start"],
            value["end"] - 1,  # Quix's end is exclusive
        )
        seen[0] += 1

    sdf = sdf.update(keep, metadata=True)
    started, cpu = time.perf_counter(), time.process_time()
    app.run(count=records, timeout=60, collect=False)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"records": seen[0], "seconds": seconds, "cpu_seconds": cpu, "sessions": last}


def _ms(when: dt.datetime | None) -> int | None:
    return None if when is None else int(when.replace(tzinfo=dt.UTC).timestamp() * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", required=True, help="clickstream JSON lines (plain or gzip)")
    parser.add_argument("--limit", type=int, default=400_000, help="first N events (0: all)")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "C360_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    values = list(_lines(Path(args.file)))
    if args.limit:
        values = values[: args.limit]
    cluster = MockCluster(brokers=1)
    url, admin = _database(args.postgres)
    try:
        cluster.initial_rebalance_delay(0)
        cluster.create_topic(TOPIC, args.partitions, replication_factor=1)
        published = _publish(cluster, values, args.partitions)
        c360 = _c360(cluster, url, args.partitions, args.batch_size)
        with tempfile.TemporaryDirectory(prefix="c360-bench-quix-") as state_dir:
            quix = _quix(cluster, len(values), Path(state_dir))
    finally:
        cluster.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
        admin.dispose()
    ours = {key: (_ms(start), _ms(end)) for key, (start, end) in c360.pop("sessions").items()}
    theirs = quix.pop("sessions")
    agree = sum(1 for key, session in theirs.items() if ours.get(key) == session)
    c360_rate = c360["records"] / c360["seconds"]
    quix_rate = quix["records"] / quix["seconds"]
    print(
        json.dumps(
            {
                "bench": "stream_kafka",
                "events": len(values),
                "partitions": args.partitions,
                "batch_size": args.batch_size,
                "publish_seconds": round(published, 1),
                "c360": {k: round(v, 3) if isinstance(v, float) else v for k, v in c360.items()},
                "c360_events_per_s": round(c360_rate),
                "quix": {k: round(v, 3) if isinstance(v, float) else v for k, v in quix.items()},
                "quix_events_per_s": round(quix_rate),
                "c360_over_quix": round(c360_rate / quix_rate, 2),
                "sessions_compared": len(theirs),
                "sessions_agreeing": agree,
                "cores": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
