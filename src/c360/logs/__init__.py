"""The event log: a local folder (embedded default) or Kafka, behind one interface."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from c360.contracts.log import Record, RecordBatch, TopicPartition
from c360.errors import ConfigError
from c360.logs.base import EventLog, LogErasure, RecordMatch, is_tombstone, partition_for
from c360.masking import mask_secrets

if TYPE_CHECKING:
    from c360.config import LogSettings

__all__ = [
    "EventLog",
    "LogErasure",
    "Record",
    "RecordBatch",
    "RecordMatch",
    "TopicPartition",
    "is_tombstone",
    "open_configured",
    "open_log",
    "partition_for",
]

LOCAL_SCHEME = "local://"


def open_log(
    url: str,
    partitions: int,
    kafka_properties: Mapping[str, str] | None = None,
    *,
    segment_bytes: int | None = None,
    segment_hours: int | None = None,
) -> EventLog:
    """The event log for a ``log.url``; the scheme picks the backend.

    ``partitions`` is the partition count of topics the log creates (``log.partitions``).
    ``kafka://`` takes query parameters (``session_timeout_ms``, ``heartbeat_interval_ms``,
    ``timeout_ms``): see :mod:`c360.logs.kafka`; ``kafka_properties`` are extra librdkafka
    client properties (``log.kafka_properties``: security, tuning). ``segment_bytes`` and
    ``segment_hours`` say when a local log's segments roll (``log.segment_bytes``,
    ``log.segment_hours``; unset: their defaults; a Kafka topic has its own
    ``segment.bytes``/``segment.ms``). Use :func:`open_configured` with the settings' ``log``
    section.
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "local":
        from c360.logs.local import LocalLog

        path = url[len(LOCAL_SCHEME) :]
        if not path:
            raise ConfigError(
                "log.url", f"{mask_secrets(url)!r} names no folder; e.g. local://data/log"
            )
        sizes: dict[str, int] = {}
        if segment_bytes is not None:
            sizes["segment_bytes"] = segment_bytes
        if segment_hours is not None:
            sizes["segment_ms"] = segment_hours * 3600 * 1000
        return LocalLog(path, partitions, **sizes)
    if scheme == "kafka":
        from c360.logs.kafka import KafkaLog

        return KafkaLog.from_url(url, partitions, kafka_properties)
    raise ConfigError(
        "log.url",
        f"unsupported event log {mask_secrets(url)!r}; accepted: local://PATH, kafka://HOST:PORT",
    )


def open_configured(settings: LogSettings) -> EventLog:
    """The event log a ``[log]`` section describes."""
    return open_log(
        settings.url,
        settings.partitions,
        settings.kafka_client_properties(),
        segment_bytes=settings.segment_bytes,
        segment_hours=settings.segment_hours,
    )
