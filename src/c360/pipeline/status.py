"""``c360 status``: one screen on the health of each layer, with a red/amber/green verdict.

- **serving**: the store answers; the serving batch's date and age;
- **batch**: the latest run's steps and who holds the batch lock (a batch, Dagster's run or an
  erasure; an expired lease is one whose holder died, taken over by the next batch); green
  when the last publish is under ``BATCH_AMBER_HOURS`` old and no step of the latest run
  failed, amber up to ``BATCH_RED_HOURS``, red after (or with a failed step, or no publish
  yet);
- **sources**: the newest lake partition of each watched table of the enabled sources, amber
  when older than ``quality.freshness_days``;
- **speed**: each partition's lag (records appended, not yet committed by the consumer group)
  and the dead letters of the last hour, per topic and per reason code; amber from ``LAG_AMBER``
  records or any dead letter, red from ``LAG_RED`` records or when the event log cannot be
  read.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from c360.config import Settings
from c360.contracts.times import naive_utc, naive_utc_now
from c360.errors import C360Error
from c360.lake import Lake
from c360.logs import open_configured
from c360.masking import mask_secrets
from c360.pipeline.batch_lock import LEASE
from c360.pipeline.steps import newest_partitions
from c360.stores import ServingStore

BATCH_AMBER_HOURS = 26.0
BATCH_RED_HOURS = 50.0
LAG_AMBER = 10_000
LAG_RED = 1_000_000
TOPICS = ("clickstream", "support")
_RANK = {"green": 0, "amber": 1, "red": 2}


@dataclass
class Layer:
    verdict: str = "green"
    reasons: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def worse(self, verdict: str, reason: str) -> None:
        if _RANK[verdict] > _RANK[self.verdict]:
            self.verdict = verdict
        self.reasons.append(reason)


def status(
    settings: Settings, store: ServingStore, group: str = "speed", now: dt.datetime | None = None
) -> dict[str, Layer]:
    now = naive_utc_now() if now is None else now
    return {
        "batch": _batch(store, now),
        "sources": _sources(settings, now),
        "speed": _speed(settings, store, group, now),
    }


def _batch(store: ServingStore, now: dt.datetime) -> Layer:
    layer = Layer()
    published = store.latest_publish()
    if published is None:
        layer.worse("red", "no batch published yet")
    else:
        age = (now - published["published_at"]).total_seconds() / 3600
        layer.facts["serving_batch"] = published["batch_date"]
        layer.facts["published_hours_ago"] = round(age, 1)
        if age > BATCH_RED_HOURS:
            layer.worse("red", f"the last publish is {age:.0f} h old")
        elif age > BATCH_AMBER_HOURS:
            layer.worse("amber", f"the last publish is {age:.0f} h old")
    dates = store.run_dates(1)
    if dates:
        day = dt.date.fromisoformat(dates[0])
        steps = store.step_records(day)
        layer.facts["latest_run"] = {
            "batch_date": dates[0],
            "steps": {name: record.status for name, record in steps.items()},
        }
        for name, record in steps.items():
            if record.status == "failed":
                layer.worse("red", f"step {name} of {dates[0]} failed: {record.detail}")
    held = store.lease(LEASE)
    if held is not None:
        layer.facts["batch_lock"] = {
            "owner": held.owner,
            "since": held.acquired_at.isoformat(timespec="seconds"),
            "until": held.expires_at.isoformat(timespec="seconds"),
            "expired": naive_utc(held.expires_at) <= now,
        }
    return layer


def _sources(settings: Settings, now: dt.datetime) -> Layer:
    layer = Layer()
    newest = newest_partitions(settings, Lake(settings.lake.url), now.date())
    for (source, table), last in newest.items():
        age = None if last is None else (now.date() - last).days
        layer.facts[f"{source}.{table}"] = {"newest": last and last.isoformat(), "days_old": age}
        if age is None:
            layer.worse("amber", f"{source}.{table}: no data yet")
        elif age > settings.quality.freshness_days:
            layer.worse("amber", f"{source}.{table}: newest partition {age} days old")
    return layer


def _speed(settings: Settings, store: ServingStore, group: str, now: dt.datetime) -> Layer:
    layer = Layer()
    lags: dict[str, int] = {}
    try:
        with open_configured(settings.log) as log:
            for topic in TOPICS:
                committed = store.offsets(group, topic)
                for partition in range(settings.log.partitions):
                    end = log.end_offset(topic, partition)
                    lags[f"{topic}/{partition}"] = max(0, end - committed.get(partition, 0))
    except (C360Error, OSError) as exc:
        layer.worse("red", f"the event log cannot be read: {mask_secrets(str(exc))}")
    layer.facts["lag_records"] = lags
    for where, lag in lags.items():
        if lag >= LAG_RED:
            layer.worse("red", f"{where} is {lag} records behind")
        elif lag >= LAG_AMBER:
            layer.worse("amber", f"{where} is {lag} records behind")
    dead = store.dead_letters_since(now - dt.timedelta(hours=1))
    by_topic: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    for (topic, reason), count in sorted(dead.items()):
        by_topic[topic] += count
        by_reason[reason] += count
    layer.facts["dead_letters_last_hour"] = dict(by_topic)
    layer.facts["dead_letters_by_reason"] = dict(by_reason.most_common())
    if by_topic:
        reasons = ", ".join(f"{reason} {count}" for reason, count in by_reason.most_common())
        total = by_topic.total()
        layer.worse("amber", f"{total} dead letters in the last hour ({reasons})")
    return layer


def as_dict(layers: dict[str, Layer]) -> dict[str, Any]:
    return {name: asdict(layer) for name, layer in layers.items()}
