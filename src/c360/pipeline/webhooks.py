"""The webhook dispatcher: delivers the segment event outbox to ``webhooks.url``.

Each round reads the pending events that are due (:meth:`ServingStore.due_events`) and, per
event:

- a person without marketing consent: the event is **withheld** — nothing is sent;
- otherwise ``POST`` the event, signed (:mod:`c360.contracts.webhooks`: HMAC-SHA256 over
  ``"<t>." + body``, ``C360-Signature``), with its id as ``C360-Event-Id`` and
  ``Idempotency-Key``; a 2xx answer delivers it; anything else (an error status, a timeout, a
  refused connection) schedules the next attempt after :func:`c360.retry.full_jitter`'s backoff
  (a receiver's ``Retry-After`` wins, up to the cap) until ``webhooks.max_attempts``, then the
  event is **failed**.

Every attempt is recorded (``webhook_delivery``) with the event's new status in one
transaction. The schedule lives in the store, so a dispatcher that crashes mid-round resends at
most the event it was sending — with the same id, which the receiver deduplicates on: no event
is lost, none is counted twice by a receiver that honours the idempotency key.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import orjson

from c360 import retry
from c360.config import WebhookSettings
from c360.contracts import webhooks as contract
from c360.errors import ConfigError
from c360.stores import ServingStore
from c360.stores.webhooks import DELIVERED, FAILED, PENDING, WITHHELD, Attempt, DueEvent

log = logging.getLogger(__name__)


@dataclass
class Round:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    withheld: int = 0

    @property
    def handled(self) -> int:
        return self.delivered + self.retrying + self.failed + self.withheld


def body(event: DueEvent) -> bytes:
    occurred = event.occurred_at.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps(
        {
            "id": event.event_id,
            "type": event.kind,
            "occurred_at": occurred,
            "segment": event.segment,
            "person_id": event.person_id,
            "email": event.email,
        }
    )


class Dispatcher:
    """Delivers due events; ``clock`` (unix seconds) and ``rng`` are there for tests."""

    def __init__(
        self,
        settings: WebhookSettings,
        store: ServingStore,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if settings.url is None or settings.secret is None:
            raise ConfigError(
                "webhooks.url" if settings.url is None else "webhooks.secret",
                "not set; webhooks need a receiver URL and a signing secret",
            )
        self.settings = settings
        self.url = settings.url
        self.secret = settings.secret.get_secret_value()
        self.store = store
        self.clock = clock
        self.rng = rng or random.Random()
        self.http = httpx.Client(timeout=settings.timeout_seconds)

    def close(self) -> None:
        self.http.close()

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC).replace(tzinfo=None)

    def round(self) -> Round:
        """One pass over the events due now."""
        done = Round()
        for event in self.store.due_events(self._now(), self.settings.batch_size):
            status = self._handle(event)
            if status == DELIVERED:
                done.delivered += 1
            elif status == WITHHELD:
                done.withheld += 1
            elif status == FAILED:
                done.failed += 1
            else:
                done.retrying += 1
        return done

    def _handle(self, event: DueEvent) -> str:
        attempt = event.attempts + 1
        at = self._now()
        if not event.consent or not event.email:
            self.store.record_delivery(
                Attempt(event.event_id, attempt, at, None, None, False, WITHHELD, at)
            )
            return WITHHELD
        payload = body(event)
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "c360-webhooks",
            contract.SIGNATURE_HEADER: contract.signature_header(self.secret, timestamp, payload),
            contract.EVENT_ID_HEADER: event.event_id,
            contract.IDEMPOTENCY_HEADER: event.event_id,
        }
        status_code: int | None = None
        error: str | None = None
        delay: float | None = None
        try:
            response = self.http.post(self.url, content=payload, headers=headers)
            status_code = response.status_code
            if response.is_success:
                self.store.record_delivery(
                    Attempt(event.event_id, attempt, at, status_code, None, True, DELIVERED, at)
                )
                return DELIVERED
            error = f"HTTP {status_code}"
            delay = retry.parse_retry_after(response.headers.get("Retry-After"))
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        if attempt >= self.settings.max_attempts:
            outcome, next_at = FAILED, at
            log.warning("webhook %s: %s; gave up after %d attempts", event.event_id, error, attempt)
        else:
            wait = retry.full_jitter(
                attempt,
                self.settings.backoff_base_seconds,
                self.settings.backoff_cap_seconds,
                self.rng,
            )
            if delay is not None:
                wait = min(delay, self.settings.backoff_cap_seconds)
            outcome, next_at = PENDING, at + dt.timedelta(seconds=wait)
            log.info(
                "webhook %s: %s; attempt %d in %.1fs", event.event_id, error, attempt + 1, wait
            )
        self.store.record_delivery(
            Attempt(event.event_id, attempt, at, status_code, error, False, outcome, next_at)
        )
        return outcome


def run(
    settings: WebhookSettings,
    store: ServingStore,
    *,
    once: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> Round:
    """Deliver until ``should_stop()`` (or, with ``once``, one round); the totals."""
    dispatcher = Dispatcher(settings, store)
    total = Round()
    try:
        while True:
            done = dispatcher.round()
            total.delivered += done.delivered
            total.retrying += done.retrying
            total.failed += done.failed
            total.withheld += done.withheld
            if once or (should_stop is not None and should_stop()):
                return total
            if done.handled == 0 and retry.sleep(settings.poll_seconds, should_stop):
                return total
    finally:
        dispatcher.close()
