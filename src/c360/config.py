"""Typed, frozen configuration: one model, one documented precedence order.

Precedence, highest first:

1. command-line overrides (e.g. ``c360 demo --port``), passed as ``overrides``;
2. environment variables ``C360_<SECTION>_<KEY>`` (e.g. ``C360_SERVING_URL``);
3. the TOML file: ``--config PATH``, else ``$C360_CONFIG``, else ``./c360.toml`` if present;
4. the defaults below (embedded engines under ``./data``).

Every resolved value remembers where it came from (:class:`ResolvedConfig.sources`), which
``c360 config show`` prints. Unknown keys, bad URLs and missing values fail at load time with a
:class:`~c360.errors.ConfigError` that names the key and what is accepted.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from c360.errors import ConfigError
from c360.masking import mask_secrets

ENV_PREFIX = "C360_"
CONFIG_PATH_ENV = "C360_CONFIG"
# Variables under this prefix belong to the test suite (service URLs), not to the config.
RESERVED_ENV_PREFIXES = ("C360_TEST_",)
DEFAULT_CONFIG_FILE = "c360.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _require(value: str) -> str:
    if not value.strip():
        raise ValueError("a value is required")
    return value.strip()


def _check_scheme(value: str, accepted: Mapping[str, str]) -> str:
    value = _require(value)
    scheme = urlsplit(value).scheme.split("+")[0]
    if scheme not in accepted:
        choices = ", ".join(accepted.values())
        raise ValueError(f"unsupported URL {mask_secrets(value)!r}; accepted: {choices}")
    return value


def _key_list(value: object) -> object:
    """One key or a list; a string holds keys separated by commas (for the environment)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        return [key.strip() for key in value.split(",") if key.strip()]
    return value


class LakeSettings(_Section):
    """The data lake: Hive-partitioned Parquet on a local folder or any fsspec filesystem."""

    url: str = Field(
        "data/lake", description="folder path or fsspec URL (s3://bucket/prefix, memory://lake)"
    )

    @field_validator("url")
    @classmethod
    def _known_filesystem(cls, value: str) -> str:
        value = _require(value)
        scheme = urlsplit(value).scheme
        if scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
            from fsspec.registry import known_implementations

            if scheme not in known_implementations:
                raise ValueError(
                    f"unknown filesystem {scheme!r} in {mask_secrets(value)!r}; accepted: a "
                    "folder path or an "
                    "fsspec URL such as file://, memory://, s3://, gs://"
                )
        return value


class ServingSettings(_Section):
    """The serving store that the API reads: SQLite (embedded) or PostgreSQL."""

    url: str = Field(
        "sqlite:///data/serving.db", description="sqlite:///PATH or postgresql://USER@HOST/DB"
    )

    @field_validator("url")
    @classmethod
    def _supported_store(cls, value: str) -> str:
        return _check_scheme(
            value, {"sqlite": "sqlite:///PATH", "postgresql": "postgresql://USER@HOST:PORT/DB"}
        )


def _pairs(text: str) -> list[str]:
    return [pair.strip() for pair in text.split(";") if pair.strip()]


# Client properties the Kafka log sets itself (its guarantees depend on them) and why.
KAFKA_OWNED_PROPERTIES = {
    "bootstrap.servers": "from log.url",
    "group.id": "the stream worker's consumer group",
    "enable.idempotence": "the idempotent producer",
    "acks": "acks=all, with the idempotent producer",
    "enable.auto.commit": "offsets live in the serving store",
    "enable.auto.offset.store": "offsets live in the serving store",
    "auto.offset.reset": "workers resume from the serving store's offsets",
    "partition.assignment.strategy": "the worker's rebalancing",
    "session.timeout.ms": "a log.url parameter: ?session_timeout_ms=",
    "heartbeat.interval.ms": "a log.url parameter: ?heartbeat_interval_ms=",
    "allow.auto.create.topics": "topics are created on first append only",
    "logger": "c360's logging",
    "error_cb": "c360's error handling",
}


# The local event log's segments (log.segment_bytes, log.segment_hours; c360.logs.local).
DEFAULT_LOG_SEGMENT_BYTES = 256 * 1024 * 1024
MIN_LOG_SEGMENT_BYTES = 1024 * 1024
DEFAULT_LOG_SEGMENT_HOURS = 24
MAX_LOG_SEGMENT_HOURS = 366 * 24


class LogSettings(_Section):
    """The event log between ingestion and the speed layer: local folder or Kafka."""

    url: str = Field(
        "local://data/log", description="local://PATH or kafka://HOST:PORT[,HOST:PORT]"
    )
    partitions: int = Field(4, ge=1, le=1024, description="partitions per topic (local log)")
    kafka_properties: SecretStr | None = Field(
        None,
        description="extra librdkafka client properties for a kafka:// log, KEY=VALUE pairs "
        "separated by ';' (e.g. security.protocol=SASL_SSL; sasl.mechanism=PLAIN; "
        "sasl.username=KEY; sasl.password=SECRET); a secret: set it with "
        "C360_LOG_KAFKA_PROPERTIES",
    )

    segment_bytes: int = Field(
        DEFAULT_LOG_SEGMENT_BYTES,
        description="local log: a partition's active segment file rolls when a batch would "
        "take it past this many bytes (Kafka's segment.bytes); retention deletes whole "
        f"segments; at least {MIN_LOG_SEGMENT_BYTES}",
    )
    segment_hours: int = Field(
        DEFAULT_LOG_SEGMENT_HOURS,
        description="local log: the active segment also rolls once its first record is this "
        "many hours old (Kafka's segment.ms), so retention.log_days can delete it whole that "
        "much after its newest record; 0 = by size only",
    )

    @field_validator("segment_bytes")
    @classmethod
    def _segment_size(cls, value: int) -> int:
        if value < MIN_LOG_SEGMENT_BYTES:
            raise ValueError(
                f"{value} bytes is too small a segment (each is a file, and retention deletes "
                f"whole ones): set at least {MIN_LOG_SEGMENT_BYTES} (1 MiB); the default is "
                f"{DEFAULT_LOG_SEGMENT_BYTES} (256 MiB)"
            )
        return value

    @field_validator("segment_hours")
    @classmethod
    def _segment_age(cls, value: int) -> int:
        if not 0 <= value <= MAX_LOG_SEGMENT_HOURS:
            raise ValueError(
                f"{value} hours is not a segment age: set 0 (roll by size only) up to "
                f"{MAX_LOG_SEGMENT_HOURS} (a year); the default is {DEFAULT_LOG_SEGMENT_HOURS}"
            )
        return value

    @field_validator("kafka_properties")
    @classmethod
    def _kafka_pairs(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        for pair in _pairs(value.get_secret_value()):
            key, equals, _ = pair.partition("=")
            key = key.strip()
            if not equals or not key:
                raise ValueError(
                    f"a pair is not KEY=VALUE (its key: {key!r}); write KEY=VALUE pairs "
                    "separated by ';', e.g. security.protocol=SASL_SSL; sasl.mechanism=PLAIN"
                )
            if key in KAFKA_OWNED_PROPERTIES:
                raise ValueError(
                    f"{key} is set by c360 itself ({KAFKA_OWNED_PROPERTIES[key]}); remove it"
                )
        return value

    def kafka_client_properties(self) -> dict[str, str]:
        """``kafka_properties`` as a mapping of librdkafka property → value."""
        if self.kafka_properties is None:
            return {}
        pairs = (p.partition("=") for p in _pairs(self.kafka_properties.get_secret_value()))
        return {key.strip(): value.strip() for key, _, value in pairs}

    @field_validator("url")
    @classmethod
    def _supported_log(cls, value: str) -> str:
        value = _check_scheme(
            value, {"local": "local://PATH", "kafka": "kafka://HOST:PORT[,HOST:PORT]"}
        )
        if not urlsplit(value).netloc and not urlsplit(value).path:
            raise ValueError(f"{mask_secrets(value)!r} names no location; e.g. local://data/log")
        return value


class ComputeSettings(_Section):
    """The batch and identity compute engine."""

    engine: Literal["duckdb", "spark"] = Field("duckdb", description="duckdb (embedded) or spark")
    threads: int = Field(0, ge=0, description="worker threads; 0 = all cores")
    memory_limit: str = Field(
        "",
        description="e.g. 4GB: each DuckDB the batch and identity steps open spills past it "
        "(Spark local mode: the driver's memory); empty = the engine's default "
        "(DuckDB: 80% of RAM)",
    )
    spark_master: str = Field(
        "local[*]", description="Spark master URL: local[*], spark://HOST:7077, yarn, k8s://…"
    )
    spark_conf: str = Field(
        "",
        description="extra Spark settings, KEY=VALUE pairs separated by ';' "
        "(e.g. spark.executor.memory=8g; spark.sql.shuffle.partitions=200)",
    )

    @field_validator("spark_master")
    @classmethod
    def _spark_master(cls, value: str) -> str:
        return _require(value)

    @field_validator("spark_conf")
    @classmethod
    def _spark_pairs(cls, value: str) -> str:
        for pair in _pairs(value):
            key, equals, _ = pair.partition("=")
            if not equals or not key.strip().startswith("spark."):
                raise ValueError(
                    f"{pair!r} is not a Spark setting; write KEY=VALUE pairs separated by ';', "
                    "e.g. spark.executor.memory=8g; spark.sql.shuffle.partitions=200"
                )
        return value.strip()

    def spark_conf_pairs(self) -> dict[str, str]:
        """``spark_conf`` as a mapping of Spark setting → value."""
        pairs = (p.partition("=") for p in _pairs(self.spark_conf))
        return {key.strip(): value.strip() for key, _, value in pairs}


class MySQLSourceSettings(_Section):
    """The orders database (any SQLAlchemy URL: MySQL/MariaDB in production, SQLite embedded)."""

    url: str = Field(
        "sqlite:///data/sources/shopsmart.db", description="SQLAlchemy URL of the orders DB"
    )
    lookback_hours: float = Field(
        6.0, ge=0, description="incremental extracts re-read this much before the high-water mark"
    )

    @field_validator("url")
    @classmethod
    def _sqlalchemy_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        value = _require(value)
        try:
            make_url(value)
        except ArgumentError:
            raise ValueError(
                f"not a SQLAlchemy URL: {mask_secrets(value)!r}; "
                "e.g. mysql+pymysql://root@127.0.0.1:3306/shop"
            ) from None
        return value


class MailchimpSourceSettings(_Section):
    """Email marketing: the Marketing API v3 or its files (CSV export, API-shaped JSON lines)."""

    dir: str = Field(
        "data/sources/mailchimp", description="folder of the CSV export and activity files"
    )
    api_key: SecretStr | None = Field(
        None, description="Marketing API key (KEY-dc); unset = read files"
    )
    list_id: str | None = Field(None, description="audience (list) id whose members are read")
    base_url: str | None = Field(
        None, description="replaces https://DC.api.mailchimp.com (tests, proxies); /3.0 is added"
    )
    page_size: int = Field(1000, ge=1, le=1000, description="items per API page (count)")
    max_connections: int = Field(
        10, ge=1, le=10, description="simultaneous API connections (Mailchimp allows 10)"
    )
    timeout_seconds: float = Field(30.0, gt=0, description="per-request timeout")
    activity_window_days: int = Field(
        30, ge=1, description="email activity is re-read for campaigns sent this recently"
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="secret of the Mailchimp webhook URL (POST /v1/webhooks/mailchimp?secret=…: "
        "unsubscribes withdraw consent at once); unset = the webhook answers 503",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _require(value)
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"not an http(s) URL: {mask_secrets(value)!r}; e.g. http://127.0.0.1:8080"
            )
        return value.rstrip("/")


class ClickstreamSourceSettings(_Section):
    """The website clickstream as a file (the simulator's output; live events use the log)."""

    path: str = Field(
        "data/sources/clickstream.jsonl.gz", description="Segment messages, JSON lines (gzip)"
    )


class ZendeskSourceSettings(_Section):
    """Zendesk webhook events: a file (the simulator's output) or live, the signed webhook."""

    path: str = Field(
        "data/sources/zendesk_events.jsonl", description="ticket webhook payloads, JSON lines"
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="the webhook's signing secret (POST /v1/webhooks/zendesk); unset = the "
        "webhook answers 503",
    )
    signature_tolerance_seconds: int = Field(
        300,
        ge=1,
        le=86_400,
        description="a signature timestamp further than this from the server clock is refused",
    )

    @field_validator("webhook_secret")
    @classmethod
    def _non_empty_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None  # an empty value (e.g. C360_SOURCES_ZENDESK_WEBHOOK_SECRET=) = unset
        return value


SOURCE_NAMES = ("mysql", "mailchimp", "zendesk", "clickstream")


class SourcesSettings(_Section):
    """Which sources this shop has, and where each one is read from."""

    enabled: Annotated[tuple[str, ...], BeforeValidator(_key_list)] = Field(
        SOURCE_NAMES,
        description="the sources this shop has (a list, or one string separated by commas), of "
        'mysql, mailchimp, zendesk, clickstream; an orders-only shop: ["mysql"]. Features of '
        "an absent source are missing (null), not zero",
    )
    mysql: MySQLSourceSettings = MySQLSourceSettings()
    mailchimp: MailchimpSourceSettings = MailchimpSourceSettings()
    clickstream: ClickstreamSourceSettings = ClickstreamSourceSettings()
    zendesk: ZendeskSourceSettings = ZendeskSourceSettings()

    @field_validator("enabled")
    @classmethod
    def _known_sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in SOURCE_NAMES]
        if unknown:
            raise ValueError(f"unknown source {unknown[0]!r}; accepted: {', '.join(SOURCE_NAMES)}")
        if "mysql" not in value:
            raise ValueError("the orders DB (mysql) is the one source every shop has: add it")
        return tuple(dict.fromkeys(value))


class SimulatorSettings(_Section):
    """The ShopSmart world generator (`c360 generate`); it writes to the [sources] locations."""

    seed: int = Field(42, description="same seed, same world, byte for byte")
    customers: int = Field(1000, ge=1, le=10_000_000, description="registered customers")
    days: int = Field(90, ge=1, le=3650, description="days of history")
    start_date: dt.date = Field(dt.date(2025, 1, 1), description="first simulated day (UTC)")
    truth_dir: str = Field("data/truth", description="ground truth, kept apart from the sources")
    shared_email_share: float = Field(
        0.02,
        ge=0,
        le=0.3,
        description="share of the email keys used by two or more people (households sharing "
        "a mailbox)",
    )
    shared_phone_share: float = Field(
        0.02, ge=0, le=0.3, description="share of the phone numbers a household shares"
    )


class QualitySettings(_Section):
    """Data-quality checks the daily batch runs before it publishes."""

    row_count_tolerance: float = Field(
        0.2, ge=0, description="largest relative change of the profile count from the previous day"
    )
    max_null_rate: float = Field(
        0.05, ge=0, le=1, description="largest share of persons without an email address"
    )
    freshness_days: int = Field(
        2, ge=0, description="a source whose newest partition is older than this is stale"
    )
    stale_source_blocks_publish: bool = Field(
        False, description="true: a stale source stops the publish; false: a warning"
    )


class CollectorSettings(_Section):
    """The Segment-compatible collector of the API server (POST /v1/track, /v1/batch, …)."""

    write_keys: Annotated[tuple[SecretStr, ...], BeforeValidator(_key_list)] = Field(
        (),
        description="accepted write keys (a list, or one string with keys separated by commas); "
        "empty = the collector answers 503",
    )
    max_message_bytes: int = Field(
        32 * 1024, ge=1024, description="largest message (a request, or one item of a batch)"
    )
    max_batch_bytes: int = Field(
        500 * 1024, ge=1024, le=8 * 1024 * 1024, description="largest /v1/batch request body"
    )

    @field_validator("write_keys")
    @classmethod
    def _no_empty_keys(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(not key.get_secret_value().strip() for key in value):
            raise ValueError("a write key must not be empty")
        return value


def _origin(value: str) -> str:
    """A CORS origin as browsers send it: ``*`` or ``scheme://host[:port]``, nothing after."""
    value = value.strip()
    if value == "*":
        return value
    parts, shown = urlsplit(value), mask_secrets(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{shown!r} is not an origin; e.g. https://shop.example.com")
    if parts.path or parts.query or parts.fragment or parts.username is not None:
        raise ValueError(
            f"{shown!r}: an origin is scheme://host[:port] only (no path, not even a final /), "
            "as browsers send it"
        )
    return value


DEFAULT_MAX_CLOCK_SKEW_SECONDS = 300


class EventSettings(_Section):
    """Plausibility rules for events: the collector, the webhook and the speed layer apply them."""

    max_clock_skew_seconds: int = Field(
        DEFAULT_MAX_CLOCK_SKEW_SECONDS,
        ge=0,
        le=86_400,
        description="how far an event time may lie after the time the event was received (the "
        "collector's receivedAt, after Segment's sentAt correction; the webhook's clock; the event "
        "log's append time); a later event is refused (400) or dead-lettered",
    )


DEFAULT_COMMIT_INTERVAL_SECONDS = 0.2


class StreamSettings(_Section):
    """The speed layer's worker (``c360 stream run``)."""

    commit_interval_seconds: float = Field(
        DEFAULT_COMMIT_INTERVAL_SECONDS,
        ge=0,
        le=10,
        description="while events keep arriving, a micro-batch (one commit) starts at most this "
        "often: fewer, larger commits cost the serving store's readers less, and an event may "
        "wait up to this long more to be served; 0: no wait. A backlog's full batches go on at "
        "once",
    )


class ApiSettings(_Section):
    """The Profile API server."""

    host: str = Field("127.0.0.1", description="address the API server binds")
    port: int = Field(8360, ge=1, le=65535, description="port the API server binds")
    rate_limit_per_s: float = Field(
        1000.0,
        ge=0,
        description="requests per second per API key and server process, unless the key has "
        "its own limit (c360 keys create --rate-limit); 0 = no limit",
    )
    key_refresh_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="each server process re-reads the API keys this often: a revoked key "
        "stops working within this time (a new key works at once)",
    )
    cors_origins: Annotated[tuple[str, ...], BeforeValidator(_key_list)] = Field(
        (),
        description="browser origins allowed to call the API (CORS), e.g. "
        "https://shop.example.com, or * for any; a list, or one string with origins separated "
        "by commas; empty = no cross-origin access",
    )
    store_threads: int = Field(
        4,
        ge=1,
        le=64,
        description="reads of a networked serving store (PostgreSQL) running at once in each "
        "server process, on its threads (timeline, search) or, with api.profile_reads = async, "
        "its async connections; more only contend for the interpreter lock and the connection "
        "pool (measured: at 1,000 requests/s, 40 threads fell behind the rate, 4 kept it)",
    )
    profile_reads: Literal["inline", "async"] = Field(
        "inline",
        description="how a networked serving store's (PostgreSQL's) profile reads run in a "
        "server process: inline — on the event loop through the driver's blocking call, the "
        "loop held for the round trip: the least CPU a read (measured on one host, 2 workers: "
        "0.39 of the floor, 0.27 with async); async — through the driver's async "
        "connections, the loop free meanwhile: for a store whose round trips are long "
        "(another zone) when more server processes are not an option; SQLite's reads are "
        "always inline",
    )
    profile_cache_size: int = Field(
        20_000,
        ge=0,
        description="profiles whose batch part each server process keeps in memory (the "
        "most recently read; about 2 KB each), so their reads fetch only the real-time part, "
        "and as many identifiers with the person each was found to belong to, so a read by one "
        "skips the find; never stale (a publish or an erasure is seen by the next read); "
        "0 = none",
    )
    metrics: bool = Field(
        True,
        description="count and time every request and serve them at /metrics (Prometheus); "
        "off only to measure what that costs (bench/bench_api.py --metrics off)",
    )
    readiness_max_publish_age_hours: float = Field(
        48.0,
        ge=0,
        description="/readyz answers 503 when the serving batch was published longer ago than "
        "this, or never; 0 = the publish is not checked",
    )
    audit_flush_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="the read audit is written this often (a crash loses at most this long "
        "of reads)",
    )
    audit_buffer_size: int = Field(
        100_000,
        ge=100,
        le=10_000_000,
        description="profile reads held for the read audit at most; beyond, reads are not "
        "audited (counted in c360_audit_dropped_total)",
    )

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_origin(origin) for origin in value)


class IdentitySettings(_Section):
    """Identity resolution: normalisation, probabilistic matching and the over-merge guards."""

    default_phone_region: str = Field(
        "DE", min_length=2, max_length=2, description="region of phone numbers written without +"
    )
    blocked_values: Annotated[tuple[str, ...], BeforeValidator(_key_list)] = Field(
        (
            "test@test.com",
            "test@example.com",
            "noemail@example.com",
            "null",
            "none",
            "n/a",
            "unknown",
            "0000000",
            "+490000000",
        ),
        description="identifier values that are never evidence (compared after normalisation)",
    )
    max_customers_per_identifier: int = Field(
        1,
        ge=1,
        description="an identifier seen with more customer accounts than this is not evidence "
        "(a shared device, a front-desk email)",
    )
    match_probability: float = Field(
        0.99, gt=0, lt=1, description="Splink match probability a probabilistic link needs"
    )
    max_cluster_records: int = Field(
        5000, ge=2, description="a link that would grow a cluster beyond this is refused"
    )
    giant_cluster_share: float = Field(
        0.01,
        gt=0,
        le=1,
        description="the run fails when one person holds more than this share of all records "
        "(and more than giant_cluster_min_records)",
    )
    giant_cluster_min_records: int = Field(
        1000,
        ge=2,
        description="a cluster this small never counts as giant (small worlds: one loyal "
        "customer's orders are a large share)",
    )
    # Splink's unsupervised training (c360.identity.probabilistic): defaults tuned on the
    # simulator's worlds and FEBRL; change them against a labelled sample (identity evaluate).
    training_seed: int = Field(
        360, description="seed of every sample Splink draws: the same input gives the same model"
    )
    u_sample_pairs: int = Field(
        3_000_000,
        ge=1_000,
        description="random record pairs sampled to estimate each comparison's u probability "
        "(the email comparison's is counted over every pair instead: its levels of one "
        "person's identifiers are too rare among random pairs for a sample to see)",
    )
    prior_recall: float = Field(
        0.7,
        gt=0,
        le=1,
        description="assumed share of true matches that the prior's rules (same email key, "
        "same phone) find; sets the prior match probability",
    )
    min_training_pairs: int = Field(
        20, ge=1, description="an EM training block needs at least this many pairs to be used"
    )
    max_block_size: int = Field(
        10,
        ge=2,
        description="a blocking rule on attributes many people share (names, birthdays, "
        "places) leaves out a block (the profiles sharing its key, e.g. one common name at one "
        "email domain) larger than this: such blocks grow with the population, their pairs with "
        "its square, and they are mostly different people",
    )
    max_identifier_block_size: int = Field(
        100,
        ge=2,
        description="the same for a blocking rule on a person's own identifiers (a phone, an "
        "email's local part, an address), whose block holds all of one person's or "
        "household's profiles: larger only for a shared one (info@…, a switchboard)",
    )
    min_named_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="an EM training block is used when at least this share of its pairs "
        "agree on a first or last name (else it is mostly different people)",
    )


class TimelineSettings(_Section):
    """A person's timeline (GET /v1/profiles/{id}/timeline): how far back and how much is kept.

    Each batch publishes the orders, ticket events, email activity and web sessions of the
    window before its cutoff; since the cutoff, the speed layer's own rows are read (its last 8
    ended sessions per cookie and 20 ticket events per Zendesk user). Older events are neither
    published nor shown.
    """

    days: int = Field(90, ge=1, le=3650, description="days of events the timeline keeps and shows")
    max_events_per_identifier: int = Field(
        500,
        ge=1,
        description="batch events published per identifier (orders, tickets, emails, sessions), "
        "the newest",
    )


class WebhookSettings(_Section):
    """Outbound webhooks: segment.entered / segment.exited, signed (docs/webhooks.md).

    Delivered by ``c360 webhooks deliver``: HMAC-SHA256 over timestamp + body, retried with
    backoff, every attempt recorded."""

    url: str | None = Field(
        None, description="the receiver's http(s) URL; unset = events are kept, not delivered"
    )
    secret: SecretStr | None = Field(
        None, description="the signing secret the receiver verifies with; required with url"
    )
    max_attempts: int = Field(
        8, ge=1, le=100, description="attempts per event before it is marked failed"
    )
    backoff_base_seconds: float = Field(
        2.0, gt=0, description="first retry waits up to this (full jitter), doubling after"
    )
    backoff_cap_seconds: float = Field(600.0, gt=0, description="no retry waits longer than this")
    timeout_seconds: float = Field(10.0, gt=0, le=300, description="per delivery request")
    batch_size: int = Field(100, ge=1, le=10_000, description="events read per round")
    poll_seconds: float = Field(
        1.0, gt=0, le=3600, description="c360 webhooks deliver: the wait between idle rounds"
    )

    @field_validator("secret")
    @classmethod
    def _non_empty_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(
                f"not an http(s) URL: {mask_secrets(value)!r}; e.g. https://hooks.example.com/c360"
            )
        return value


class BatchSettings(_Section):
    """The daily batch's scheduling: one batch at a time (a lease in the serving store) and
    the retries of ``c360 batch schedule``."""

    lock_ttl_seconds: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="the batch lock's lease: renewed every third of it while a batch runs; a "
        "dead holder's lease is taken over after it",
    )
    retries: int = Field(
        3,
        ge=0,
        le=100,
        description="c360 batch schedule: tries of a failed day again (resuming at the failed "
        "step) before it waits for the next day",
    )
    retry_base_seconds: float = Field(
        60.0, gt=0, description="the first retry waits up to this (full jitter), doubling after"
    )
    retry_cap_seconds: float = Field(
        3600.0, gt=0, description="no retry of a failed day waits longer than this"
    )
    first_date: dt.date = Field(
        dt.date(2025, 1, 1),
        description="the Dagster code location's first daily partition (backfills start there)",
    )


class MetricsSettings(_Section):
    """Where the daily batch leaves its metrics for Prometheus (a batch job is not scraped
    while it runs: it writes a file the node exporter serves, or pushes to a Pushgateway)."""

    textfile_dir: str | None = Field(
        None,
        description="node exporter's textfile collector directory: the batch writes "
        "c360_batch.prom there (atomically) after each run",
    )
    pushgateway_url: str | None = Field(
        None,
        description="Prometheus Pushgateway the batch pushes its metrics to after each run "
        "(job c360_batch), e.g. http://pushgateway:9091",
    )


class ChurnSettings(_Section):
    """The churn model (`c360 train churn`, `c360 score`, the daily batch's score step).

    A person churns at snapshot date T when they place no order (other than a cancelled one) in
    the ``horizon_days`` after the end of T; the population at T is every person with at least
    one order before the end of T. Training takes ``snapshots`` dates ``snapshot_interval_days``
    apart, the latest one whose horizon has passed; it is the test set, the earlier ones train.
    """

    horizon_days: int = Field(
        90, ge=1, le=730, description="days after T in which a churner buys nothing"
    )
    snapshots: int = Field(
        6,
        ge=2,
        le=60,
        description="snapshot dates T (at least 2: train on earlier, test on the latest)",
    )
    snapshot_interval_days: int = Field(30, ge=1, le=365, description="days between snapshot dates")
    min_positives: int = Field(
        20,
        ge=1,
        description="fewest churners (and non-churners) the train and the test sets each need",
    )
    calibration_share: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="share of the training persons held out to calibrate probabilities",
    )
    leak_check: bool = Field(
        True,
        description="recompute each snapshot's features from the lake cut at the end of T and fail "
        "the build on any difference (a feature that reads facts after T)",
    )
    band_thresholds: Annotated[tuple[float, float], BeforeValidator(_key_list)] = Field(
        (0.3, 0.6),
        description="churn_risk below the first is low, from the second on high, medium between",
    )
    model_version: str | None = Field(
        None, description="the registered model that scores (e.g. v3); unset = the newest"
    )
    seed: int = Field(42, description="seed of the model's and the split's randomness")

    @field_validator("band_thresholds")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low < high < 1:
            raise ValueError(f"need 0 < low < high < 1, got {list(value)}; e.g. [0.3, 0.6]")
        return value


# The longest window a batch feature reads raw events over (support_tickets_90d; the web's
# are 30 days): the raw events the batch needs before a date.
RAW_EVENT_WINDOW_DAYS = 90


class RetentionSettings(_Section):
    """How long raw events are kept (the daily batch's ``retention`` step, ``c360 retention``).

    Unset keeps everything. The lake's raw events are the archived event log (clickstream,
    support) and Zendesk's event files; partitions wholly older than the period are removed.
    The batch's snapshots and the orders DB's extracts are not raw events and are kept.
    """

    raw_event_days: int | None = Field(
        None,
        ge=1,
        le=36_500,
        description="days of raw events (clickstream, Zendesk) the lake keeps, counted back "
        "from the batch date; at least what the batch reads (see docs); unset = forever",
    )
    log_days: int | None = Field(
        None,
        ge=1,
        le=36_500,
        description="days of records the event log keeps (only records the archive has "
        "already copied to the lake are removed); unset = forever",
    )


def raw_events_needed_days(settings: Settings) -> int:
    """The raw events the batch reads, in days before its date: the longest feature window,
    the timeline's days and, for the churn model's point-in-time training, every snapshot's
    window back from the oldest snapshot."""
    churn = settings.churn
    training = (churn.snapshots - 1) * churn.snapshot_interval_days + churn.horizon_days
    return max(RAW_EVENT_WINDOW_DAYS, settings.timeline.days, training + RAW_EVENT_WINDOW_DAYS)


def _check_retention(settings: Settings, sources: Mapping[str, str]) -> None:
    days = settings.retention.raw_event_days
    needed = raw_events_needed_days(settings)
    if days is not None and days < needed:
        key = "retention.raw_event_days"
        raise ConfigError(
            key,
            f"{days} days would remove raw events the batch still reads: at least {needed} "
            "(the longest feature window, timeline.days, and the churn model's snapshots: "
            "churn.snapshots, churn.snapshot_interval_days, churn.horizon_days)",
            source=sources.get(key),
        )


class LoggingSettings(_Section):
    """How c360's processes write their logs (c360.logformat): one event per line on stderr."""

    format: Literal["text", "json"] = Field(
        "text", description="text for a terminal, json (one object a line) for a log shipper"
    )
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING",
        description="the least severe level c360 writes: INFO adds each step's progress "
        "(--debug: DEBUG); stdout keeps the commands' own output either way",
    )


class Settings(_Section):
    """The whole c360 configuration."""

    lake: LakeSettings = LakeSettings()
    serving: ServingSettings = ServingSettings()
    log: LogSettings = LogSettings()
    compute: ComputeSettings = ComputeSettings()
    sources: SourcesSettings = SourcesSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    quality: QualitySettings = QualitySettings()
    identity: IdentitySettings = IdentitySettings()
    api: ApiSettings = ApiSettings()
    collector: CollectorSettings = CollectorSettings()
    events: EventSettings = EventSettings()
    stream: StreamSettings = StreamSettings()
    timeline: TimelineSettings = TimelineSettings()
    webhooks: WebhookSettings = WebhookSettings()
    batch: BatchSettings = BatchSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    churn: ChurnSettings = ChurnSettings()
    retention: RetentionSettings = RetentionSettings()


@dataclass(frozen=True)
class ResolvedConfig:
    settings: Settings
    sources: Mapping[str, str]  # dotted key -> where its value came from
    file: Path | None

    def items(self) -> Iterator[tuple[str, Any, str]]:
        """Every leaf setting as (dotted key, value, source), secrets masked: secret settings
        whole, and the password of any URL (``serving.url``, ``sources.mysql.url``, …)."""
        for key in _leaf_keys(Settings):
            value: Any = self.settings
            for part in key.split("."):
                value = getattr(value, part)
            if isinstance(value, SecretStr):
                value = "**********"
            elif isinstance(value, tuple | list) and any(isinstance(v, SecretStr) for v in value):
                value = ["**********"] * len(value)
            elif isinstance(value, str):  # a password inside a URL (serving.url, …)
                value = mask_secrets(value)
            elif isinstance(value, tuple | list):
                value = type(value)(mask_secrets(v) if isinstance(v, str) else v for v in value)
            yield key, value, self.sources.get(key, "default")


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_leaf_keys(annotation, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def env_name(key: str) -> str:
    return ENV_PREFIX + key.replace(".", "_").upper()


def _set(tree: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in tree.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def _find_file(path: str | Path | None, environ: Mapping[str, str]) -> tuple[Path | None, str]:
    if path is not None:
        return Path(path), "--config"
    if environ.get(CONFIG_PATH_ENV):
        return Path(environ[CONFIG_PATH_ENV]), CONFIG_PATH_ENV
    default = Path(DEFAULT_CONFIG_FILE)
    return (default, "default") if default.is_file() else (None, "default")


def _read_file(path: Path, named_by: str) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(named_by, f"config file {str(path)!r} does not exist; fix the path")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ResolvedConfig:
    """Resolve the configuration (see the module docstring for the precedence order)."""
    environ = os.environ if environ is None else environ
    known = set(_leaf_keys(Settings))
    tree: dict[str, Any] = {}
    sources: dict[str, str] = {}

    file, named_by = _find_file(path, environ)
    if file is not None:
        for key, value in _flatten(_read_file(file, named_by)):
            if key not in known:
                raise ConfigError(key, f"unknown key in {file}; known keys: {_near(key, known)}")
            _set(tree, key, value)
            sources[key] = str(file)

    by_env = {env_name(key): key for key in known}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_PATH_ENV:
            continue
        if name.startswith(RESERVED_ENV_PREFIXES):
            continue
        if name not in by_env:
            raise ConfigError(name, f"unknown environment variable; known: {_near(name, by_env)}")
        _set(tree, by_env[name], value)
        sources[by_env[name]] = f"env {name}"

    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in known:
            raise ConfigError(key, "unknown key")
        _set(tree, key, value)
        sources[key] = "command line"

    try:
        settings = Settings.model_validate(tree)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(key, message, source=sources.get(key)) from None
    _check_retention(settings, sources)
    return ResolvedConfig(settings=settings, sources=sources, file=file)


def _near(wrong: str, known: Mapping[str, Any] | set[str]) -> str:
    """The known keys sharing the wrong key's section, else all of them."""
    section = wrong.rsplit(".", 1)[0].rsplit("_", 1)[0]
    close = sorted(k for k in known if k.startswith(section))
    return ", ".join(close or sorted(known))


def example_toml() -> str:
    """A documented c360.toml holding every key at its default (``c360 config example``)."""
    lines = [
        "# c360 configuration. Every key is optional; shown here at its default.",
        "# Environment variables C360_<SECTION>_<KEY> override this file; see README.",
    ]

    def section(model: type[BaseModel], path: str) -> None:
        leaves = []
        for name, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                continue
            leaves.append((name, info))
        if leaves:
            lines.append("")
            if model.__doc__ and model is not Settings:
                lines.append(f"# {model.__doc__.strip().splitlines()[0]}")
            lines.append(f"[{path}]")
            for name, info in leaves:
                if info.description:
                    lines.append(f"# {info.description}")
                lines.append(_toml_line(name, info.default))
        for name, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                section(annotation, f"{path}.{name}" if path else name)

    section(Settings, "")
    return "\n".join(lines) + "\n"


def _toml_line(name: str, value: Any) -> str:
    if value is None:
        return f'# {name} = ""'
    if isinstance(value, bool):
        return f"{name} = {str(value).lower()}"
    if isinstance(value, dt.date):
        return f"{name} = {value.isoformat()}"
    if isinstance(value, int | float):
        return f"{name} = {value}"
    if isinstance(value, tuple | list):
        return f"{name} = [{', '.join(_toml_value(item) for item in value)}]"
    return f'{name} = "{value}"'


def _toml_value(value: Any) -> str:
    return _toml_line("_", value).split(" = ", 1)[1]
