"""The event log: a local folder (embedded default) or Kafka, behind one interface."""

from __future__ import annotations

from c360.errors import ConfigError
from c360.logs.base import EventLog, Record, RecordBatch, TopicPartition, partition_for

__all__ = ["EventLog", "Record", "RecordBatch", "TopicPartition", "open_log", "partition_for"]

LOCAL_SCHEME = "local://"


def open_log(url: str, partitions: int) -> EventLog:
    """The event log for a ``log.url``; the scheme picks the backend.

    ``partitions`` is the partition count of topics the log creates (``log.partitions``).
    ``kafka://`` takes query parameters (``session_timeout_ms``, ``heartbeat_interval_ms``,
    ``timeout_ms``): see :mod:`c360.logs.kafka`.
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "local":
        from c360.logs.local import LocalLog

        path = url[len(LOCAL_SCHEME) :]
        if not path:
            raise ConfigError("log.url", f"{url!r} names no folder; e.g. local://data/log")
        return LocalLog(path, partitions)
    if scheme == "kafka":
        from c360.logs.kafka import KafkaLog

        return KafkaLog.from_url(url, partitions)
    raise ConfigError(
        "log.url", f"unsupported event log {url!r}; accepted: local://PATH, kafka://HOST:PORT"
    )
