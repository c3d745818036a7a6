"""Mailchimp Marketing API v3: audience members, sent campaigns and their email activity, and
the writes of a segment sync (:meth:`MailchimpClient.sync_tag`: batch subscribe, then a tag —
a static segment — added to the members and removed from everyone else).

The client reads three collections with ``count``/``offset`` paging:

- ``GET /3.0/lists/{list_id}/members`` (``since_last_changed`` for incremental runs);
- ``GET /3.0/campaigns?status=sent`` (``since_send_time``), oldest send first;
- ``GET /3.0/reports/{campaign_id}/email-activity``, campaigns fetched concurrently but never
  more than ``sources.mailchimp.max_connections`` (Mailchimp allows 10) requests in flight.

Auth is HTTP Basic with the API key as password; the data centre is the key's suffix
(``…-us6`` → ``https://us6.api.mailchimp.com/3.0``) unless ``sources.mailchimp.base_url``
replaces the host. Errors are classified here, once: 429, 408, 5xx and transport errors are
retried by :func:`c360.retry.call_with_retries` (exponential backoff with full jitter;
``Retry-After`` wins when sent), at most :attr:`RetryPolicy.max_attempts` tries, then raise
:class:`~c360.errors.TransientError`; 401/403 raise :class:`MailchimpAuthError`; other 4xx raise
:class:`~c360.errors.TerminalError`; a body that is not a JSON object is retried once, then
raises :class:`~c360.errors.DataError`. Messages and logs carry the URL path, the offset and the
status, never the key or an email address.

Paging while the collection changes: items are deduplicated by id (the last copy read wins),
paging follows ``total_items`` as it grows, and when ``total_items`` shrinks the current page is
read again from ``offset - shrink`` so that items shifted left by deletions before the cursor
are not skipped. What remains: deletions and insertions before the cursor that cancel out in
``total_items`` can still shift an item past the cursor unseen. The next incremental run picks
it up, provided the caller's ``since_last_changed`` looks back past the previous run's start.

Output is raw-zone shaped: members flattened to the CSV export's snake-cased columns (strings,
as the export has them; timestamps as the API sends them, ISO 8601 with offset) plus the API's
own fields (:data:`MAILCHIMP_MEMBERS_API_SCHEMA`); email activity in exactly
:data:`c360.contracts.lake.MAILCHIMP_ACTIVITY_SCHEMA`, as the JSON-lines files.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlsplit

import httpx
import orjson
import pyarrow as pa

from c360.config import MailchimpSourceSettings
from c360.contracts.lake import MAILCHIMP_ACTIVITY_SCHEMA, MAILCHIMP_MEMBERS_API_SCHEMA
from c360.errors import ConfigError, DataError, TerminalError, TransientError
from c360.retry import call_with_retries, full_jitter, parse_retry_after

log = logging.getLogger(__name__)

Json = dict[str, Any]
Params = Mapping[str, str | int]

API_KEY = "sources.mailchimp.api_key"
LIST_ID = "sources.mailchimp.list_id"
API_PREFIX = "/3.0"
_DATA_CENTRE = re.compile(r"[a-z]+[0-9]+")
_RETRY_STATUS = frozenset({408, 429})


class MailchimpAuthError(TerminalError):
    """Mailchimp refused the API key (HTTP 401/403): retrying cannot help."""


class _Failed(TransientError):
    """One failed request worth retrying; its message is the failure (``HTTP 503``, …)."""


class _Invalid(TerminalError):
    """A write refused with 400 and per-member ``errors`` (``field``: ``members[i]. …``)."""

    def __init__(self, errors: list[Json]) -> None:
        super().__init__(f"{len(errors)} members refused")
        self.errors = errors


UPSERT_CHUNK = 500  # members per batch subscribe (Mailchimp's limit)
TAG_CHUNK = 500  # emails per static-segment add or remove
_MEMBER_FIELD = re.compile(r"members\[(\d+)\]")


@dataclass(frozen=True)
class SyncReport:
    """What a tag sync did. ``failed`` counts refused members per reason (Mailchimp's error
    code or message, never an address); ``failed_emails`` are theirs, for the caller only."""

    tag: str
    tag_id: int
    audience: int
    created: int
    updated: int
    tagged: int
    untagged: int
    failed: Mapping[str, int]
    failed_emails: frozenset[str]

    def as_dict(self) -> dict[str, object]:
        return {
            "tag": self.tag,
            "tag_id": self.tag_id,
            "audience": self.audience,
            "created": self.created,
            "updated": self.updated,
            "tagged": self.tagged,
            "untagged": self.untagged,
            "failed": dict(self.failed),
        }


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries (:func:`c360.retry.call_with_retries`): full-jitter exponential backoff,
    ``Retry-After`` honoured up to a cap."""

    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_after_cap: float = 300.0

    def backoff(self, failures: int, rng: random.Random) -> float:
        return full_jitter(failures, self.backoff_base, self.backoff_cap, rng)


def parse_api_key(settings: MailchimpSourceSettings) -> tuple[str, str]:
    """The key and its data centre (``abc123-us6`` → ``us6``); a ConfigError when unusable."""
    if settings.api_key is None:
        raise ConfigError(API_KEY, "not set; the Marketing API needs a key such as 0123abcd-us6")
    key = settings.api_key.get_secret_value().strip()
    secret, _, centre = key.rpartition("-")
    if not secret or not _DATA_CENTRE.fullmatch(centre):
        raise ConfigError(
            API_KEY,
            "has no data-centre suffix: a Mailchimp API key ends in -DC (e.g. -us6); "
            "copy the whole key from Account > Extras > API keys",
        )
    return key, centre


def api_root(settings: MailchimpSourceSettings, centre: str) -> str:
    host = settings.base_url or f"https://{centre}.api.mailchimp.com"
    return host.rstrip("/") + API_PREFIX


class MailchimpClient:
    """A thread-safe Marketing API v3 reader; close it (or use it as a context manager)."""

    def __init__(
        self,
        settings: MailchimpSourceSettings,
        *,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        key, self.data_centre = parse_api_key(settings)
        self.base_url = api_root(settings, self.data_centre)
        self._settings = settings
        self._retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        self._prefix = urlsplit(self.base_url).path
        limit = settings.max_connections
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=httpx.BasicAuth("c360", key),
            timeout=settings.timeout_seconds,
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            headers={"Accept": "application/json", "User-Agent": "c360"},
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- collections -------------------------------------------------------------------------

    def members(
        self, list_id: str | None = None, since_last_changed: dt.datetime | None = None
    ) -> pa.Table:
        """The audience's members (changed since ``since_last_changed``), one row per member id."""
        list_id = list_id or self._settings.list_id
        if not list_id:
            raise ConfigError(LIST_ID, "not set; name the audience whose members are read")
        params: dict[str, str | int] = {"exclude_fields": "_links,members._links"}
        if since_last_changed is not None:
            params["since_last_changed"] = iso_utc(since_last_changed)
        path = f"/lists/{quote(list_id, safe='')}/members"
        rows: dict[str, Json] = {}
        for offset, items in self._pages(path, "members", params):
            for item in items:
                rows[_ident(item, "id", self._where(path, offset))] = flatten_member(item)
        return pa.Table.from_pylist(list(rows.values()), schema=MAILCHIMP_MEMBERS_API_SCHEMA)

    def campaigns(self, since: dt.datetime | None = None) -> list[Json]:
        """Sent campaigns (sent after ``since``), oldest send first, as the API returns them."""
        params: dict[str, str | int] = {
            "status": "sent",
            "sort_field": "send_time",
            "sort_dir": "ASC",
            "exclude_fields": "_links,campaigns._links",
        }
        if since is not None:
            params["since_send_time"] = iso_utc(since)
        found: dict[str, Json] = {}
        for offset, items in self._pages("/campaigns", "campaigns", params):
            for item in items:
                found[_ident(item, "id", self._where("/campaigns", offset))] = item
        return list(found.values())

    def email_activity(
        self, campaign_ids: Iterable[str], since: dt.datetime | None = None
    ) -> pa.Table:
        """Every recipient's activity for the campaigns, in MAILCHIMP_ACTIVITY_SCHEMA, campaigns
        in order."""
        ids = list(dict.fromkeys(campaign_ids))
        if not ids:
            return MAILCHIMP_ACTIVITY_SCHEMA.empty_table()
        workers = min(self._settings.max_connections, len(ids))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mailchimp")
        try:
            futures = [pool.submit(self._campaign_activity, c, since) for c in ids]
            tables = [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return pa.concat_tables(tables)

    def _campaign_activity(self, campaign_id: str, since: dt.datetime | None) -> pa.Table:
        params: dict[str, str | int] = {"exclude_fields": "_links,emails._links"}
        if since is not None:
            params["since"] = iso_utc(since)
        path = f"/reports/{quote(campaign_id, safe='')}/email-activity"
        rows: dict[str, Json] = {}
        for offset, items in self._pages(path, "emails", params):
            for item in items:
                rows[_ident(item, "email_id", self._where(path, offset))] = flatten_activity(
                    item, campaign_id
                )
        return pa.Table.from_pylist(list(rows.values()), schema=MAILCHIMP_ACTIVITY_SCHEMA)

    # -- writes: a segment as a tag ------------------------------------------------------------

    def sync_tag(
        self, tag: str, members: Iterable[tuple[str, str | None, str | None]]
    ) -> SyncReport:
        """Make ``tag`` name exactly ``members`` (email, first name, last name) in the audience.

        1. the tag (a static segment) is found by name, or made;
        2. members are upserted, :data:`UPSERT_CHUNK` at a time (``POST /lists/{id}``,
           ``update_existing``, ``status_if_new: subscribed``: an existing member's status —
           an unsubscribe made in Mailchimp — is never changed); members Mailchimp refuses,
           in its ``errors`` or in a 400's per-member ``errors``, are left out and counted;
        3. upserted members not yet tagged are tagged, and everyone holding the tag who is not
           in ``members`` is untagged (``POST /lists/{id}/segments/{tag id}``).
        Every request is idempotent, so the retries of 429, 5xx and transport errors are safe.
        """
        list_id = self._settings.list_id
        if not list_id:
            raise ConfigError(LIST_ID, "not set; name the audience segments are synced to")
        wanted: dict[str, tuple[str | None, str | None]] = {}
        for email, first, last in members:
            wanted[email.strip().lower()] = (first, last)
        base = f"/lists/{quote(list_id, safe='')}"
        tag_id = self._tag_id(base, tag)
        tagged = self._tagged(base, tag_id)
        failed: dict[str, int] = {}
        failed_emails: set[str] = set()
        created = updated = 0
        emails = list(wanted)
        for start in range(0, len(emails), UPSERT_CHUNK):
            chunk = emails[start : start + UPSERT_CHUNK]
            new, changed, refused = self._upsert(base, chunk, wanted)
            created, updated = created + new, updated + changed
            for email, reason in refused.items():
                failed[reason] = failed.get(reason, 0) + 1
                failed_emails.add(email)
        to_add = [e for e in emails if e not in tagged and e not in failed_emails]
        to_remove = sorted(tagged - set(wanted))
        added = self._retag(base, tag_id, "members_to_add", to_add, failed, failed_emails)
        removed = self._retag(base, tag_id, "members_to_remove", to_remove, failed, failed_emails)
        return SyncReport(
            tag,
            tag_id,
            len(wanted),
            created,
            updated,
            added,
            removed,
            failed,
            frozenset(failed_emails),
        )

    def _write(self, path: str, body: Json) -> Json:
        answer = self._fetch(path, {}, "POST", body)
        if answer is None:
            raise DataError(f"Mailchimp returned malformed JSON for POST {self._prefix}{path}")
        return answer

    def _tag_id(self, base: str, tag: str) -> int:
        for _, items in self._pages(f"{base}/segments", "segments", {"type": "static"}):
            for item in items:
                if item.get("name") == tag and isinstance(item.get("id"), int):
                    return int(item["id"])
        made = self._write(f"{base}/segments", {"name": tag, "static_segment": []})
        if not isinstance(made.get("id"), int):
            raise DataError(f"Mailchimp made tag {tag!r} but answered no id")
        return int(made["id"])

    def _tagged(self, base: str, tag_id: int) -> set[str]:
        path = f"{base}/segments/{tag_id}/members"
        found: set[str] = set()
        for _, items in self._pages(path, "members", {"fields": "members.email_address"}):
            found.update(
                str(i["email_address"]).strip().lower()
                for i in items
                if isinstance(i.get("email_address"), str)
            )
        return found

    def _upsert(
        self,
        base: str,
        emails: list[str],
        names: Mapping[str, tuple[str | None, str | None]],
    ) -> tuple[int, int, dict[str, str]]:
        """One batch subscribe: (created, updated, refused email -> reason)."""
        refused: dict[str, str] = {}
        pending = list(emails)
        for _ in range(2):  # once, and once more without what a 400 named
            body = {
                "members": [_member_body(email, *names[email]) for email in pending],
                "update_existing": True,
            }
            try:
                answer = self._write(base, body)
            except _Invalid as invalid:
                named = _named_members(invalid.errors, len(pending))
                if not named:
                    raise TerminalError(
                        f"Mailchimp POST {self._prefix}{base} refused the batch (HTTP 400) "
                        "without naming a member"
                    ) from None
                for index, reason in named.items():
                    refused[pending[index]] = reason
                pending = [e for i, e in enumerate(pending) if i not in named]
                if not pending:
                    return 0, 0, refused
                continue
            for error in answer.get("errors") or []:
                if isinstance(error, dict) and isinstance(error.get("email_address"), str):
                    reason = str(error.get("error_code") or "refused")
                    refused[error["email_address"].strip().lower()] = reason
            return (
                _count(answer.get("total_created")) or 0,
                _count(answer.get("total_updated")) or 0,
                refused,
            )
        raise TerminalError(
            f"Mailchimp POST {self._prefix}{base} refused the batch twice (HTTP 400)"
        )

    def _retag(
        self,
        base: str,
        tag_id: int,
        field: str,
        emails: list[str],
        failed: dict[str, int],
        failed_emails: set[str],
    ) -> int:
        done = 0
        path = f"{base}/segments/{tag_id}"
        answered = "members_added" if field == "members_to_add" else "members_removed"
        for start in range(0, len(emails), TAG_CHUNK):
            answer = self._write(path, {field: emails[start : start + TAG_CHUNK]})
            done += len(answer.get(answered) or [])
            for error in answer.get("errors") or []:
                if not isinstance(error, dict):
                    continue
                for email in error.get("email_addresses") or []:
                    reason = f"tag: {str(error.get('error') or 'refused')[:60]}"
                    failed[reason] = failed.get(reason, 0) + 1
                    failed_emails.add(str(email).strip().lower())
        return done

    # -- paging ------------------------------------------------------------------------------

    def _pages(self, path: str, key: str, params: Params) -> Iterator[tuple[int, list[Json]]]:
        """(offset, items) per page until a short page or ``offset >= total_items``.

        When ``total_items`` shrinks, items after a deletion moved left past the cursor: the
        page is read again from ``offset - shrink`` (callers dedupe by id).
        """
        size = self._settings.page_size
        offset, total = 0, None
        while True:
            page = self._get(path, {**params, "count": size, "offset": offset})
            items = _items(page, key, self._where(path, offset))
            yield offset, items
            latest = page.get("total_items")
            latest = latest if isinstance(latest, int) else None
            if total is not None and latest is not None and latest < total:
                offset, total = max(0, offset - (total - latest)), latest
                continue
            total = latest
            offset += len(items)
            if len(items) < size or (total is not None and offset >= total):
                return

    # -- one request, classified -------------------------------------------------------------

    def _get(self, path: str, params: Params) -> Json:
        """One page as a JSON object; a malformed body is read once more, then a DataError."""
        body = self._fetch(path, params)
        if body is None:
            where = self._where(path, params.get("offset"))
            log.warning("Mailchimp GET %s: malformed JSON; reading it once more", where)
            time.sleep(self._retry.backoff(1, self._rng))
            body = self._fetch(path, params)
            if body is None:
                raise DataError(f"Mailchimp returned malformed JSON twice for GET {where}")
        return body

    def _fetch(
        self, path: str, params: Params, method: str = "GET", body: Json | None = None
    ) -> Json | None:
        """The body (None if it is not a JSON object), transient failures retried."""
        policy = self._retry

        def on_retry(error: BaseException, failures: int, delay: float) -> None:
            log.warning(
                "Mailchimp %s %s%s: %s; attempt %d of %d in %.2fs",
                method,
                self._prefix,
                path,
                error,
                failures + 1,
                policy.max_attempts,
                delay,
            )

        try:
            return call_with_retries(
                lambda: self._attempt(path, params, method, body),
                attempts=policy.max_attempts,
                base=policy.backoff_base,
                cap=policy.backoff_cap,
                retry_after_cap=policy.retry_after_cap,
                on_retry=on_retry,
                rng=self._rng,
            )
        except _Failed as last:
            where = self._where(path, params.get("offset")) if method == "GET" else path
            raise TransientError(
                f"Mailchimp {method} {where} still failing after "
                f"{policy.max_attempts} attempts (last: {last}); retry later"
            ) from None

    def _attempt(
        self, path: str, params: Params, method: str = "GET", body: Json | None = None
    ) -> Json | None:
        """One request, classified: a body, or :class:`_Failed` (retry), or a terminal error.

        A 400 to a write whose problem document lists per-member ``errors`` is answered as
        :class:`_Invalid` (the caller leaves those members out and sends the others again)."""
        try:
            response = self._http.request(method, path, params=params, json=body)
        except httpx.TransportError as exc:
            raise _Failed(type(exc).__name__) from None
        except httpx.DecodingError:
            return None
        if response.status_code < 300:
            return _json_object(response.content)
        if response.status_code == 400 and method != "GET":
            problem = _json_object(response.content) or {}
            errors = problem.get("errors")
            if isinstance(errors, list) and errors:
                raise _Invalid([e for e in errors if isinstance(e, dict)])
        self._raise_unless_retryable(response, path, method)
        delay = parse_retry_after(response.headers.get("Retry-After"))
        raise _Failed(f"HTTP {response.status_code}", retry_after=delay)

    def _raise_unless_retryable(
        self, response: httpx.Response, path: str, method: str = "GET"
    ) -> None:
        status = response.status_code
        if status in _RETRY_STATUS or status >= 500:
            return
        where = f"{self._prefix}{path}"
        if status in (401, 403):
            raise MailchimpAuthError(
                f"Mailchimp rejected the API key for data centre {self.data_centre} "
                f"(HTTP {status} on {where}): check {API_KEY}"
            )
        hint = f": check {LIST_ID}" if status == 404 and path.startswith("/lists/") else ""
        title = _problem_title(response.content)
        raise TerminalError(f"Mailchimp {method} {where} failed with HTTP {status} ({title}){hint}")

    def _where(self, path: str, offset: object) -> str:
        return f"{self._prefix}{path} at offset {offset}"


# -- pure helpers ------------------------------------------------------------------------------


def _member_body(email: str, first: str | None, last: str | None) -> Json:
    merge = {k: v for k, v in (("FNAME", first), ("LNAME", last)) if v}
    body: Json = {"email_address": email, "status_if_new": "subscribed"}
    if merge:
        body["merge_fields"] = merge
    return body


def _named_members(errors: list[Json], size: int) -> dict[int, str]:
    """The members a 400's ``errors`` name (``field``: ``members[3].email_address``) and why
    (the field, not the message: a message can quote the address)."""
    named: dict[int, str] = {}
    for error in errors:
        match = _MEMBER_FIELD.match(str(error.get("field") or ""))
        if match is not None and int(match[1]) < size:
            field = str(error.get("field")).split(".", 1)[-1]
            named[int(match[1])] = f"invalid {field}"
    return named


def iso_utc(value: dt.datetime) -> str:
    """ISO 8601 in UTC as Mailchimp documents it; a naive datetime is taken to be UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="seconds")


def _json_object(content: bytes) -> Json | None:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _problem_title(content: bytes) -> str:
    """The problem document's ``title`` (never ``detail``, which can quote an email address)."""
    body = _json_object(content) or {}
    title = body.get("title")
    return title[:80] if isinstance(title, str) and title else "no details"


def _items(page: Json, key: str, where: str) -> list[Json]:
    items = page.get(key)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise DataError(f"Mailchimp response for GET {where} has no '{key}' list of objects")
    return items


def _ident(item: Json, field: str, where: str) -> str:
    value = item.get(field)
    if not isinstance(value, str) or not value:
        raise DataError(f"Mailchimp item without '{field}' in GET {where}")
    return value


def _mapping(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _address(value: object) -> str | None:
    """An ADDRESS merge field as the export writes it: the parts joined by two spaces."""
    if not isinstance(value, dict):
        return _text(value)
    parts = ("addr1", "addr2", "city", "state", "zip", "country")
    return "  ".join(str(value[p]) for p in parts if value.get(p))


def _tags(value: object) -> str | None:
    """Tag names as the export writes them: ``"VIP","Newsletter"``."""
    if not isinstance(value, list):
        return None
    names = (t.get("name") for t in value if isinstance(t, dict))
    return ",".join(orjson.dumps(n).decode() for n in names if isinstance(n, str))


def flatten_member(member: Json) -> Json:
    """One API member object as one MAILCHIMP_MEMBERS_API_SCHEMA row."""
    merge = _mapping(member.get("merge_fields"))
    location = _mapping(member.get("location"))
    stats = _mapping(member.get("stats"))
    ecommerce = _mapping(stats.get("ecommerce_data"))
    return {
        "email_address": _text(member.get("email_address")),
        "first_name": _text(merge.get("FNAME")),
        "last_name": _text(merge.get("LNAME")),
        "address": _address(merge.get("ADDRESS")),
        "phone_number": _text(merge.get("PHONE")),
        "birthday": _text(merge.get("BIRTHDAY")),
        "member_rating": _text(member.get("member_rating")),
        "optin_time": _text(member.get("timestamp_signup")),
        "optin_ip": _text(member.get("ip_signup")),
        "confirm_time": _text(member.get("timestamp_opt")),
        "confirm_ip": _text(member.get("ip_opt")),
        "latitude": _text(location.get("latitude")),
        "longitude": _text(location.get("longitude")),
        "gmtoff": _text(location.get("gmtoff")),
        "dstoff": _text(location.get("dstoff")),
        "timezone": _text(location.get("timezone")),
        "cc": _text(location.get("country_code")),
        "region": _text(location.get("region")),
        "last_changed": _text(member.get("last_changed")),
        "leid": _text(member.get("web_id")),
        "euid": _text(member.get("unique_email_id")),
        "notes": _text(_mapping(member.get("last_note")).get("note")),
        "tags": _tags(member.get("tags")),
        "id": _text(member.get("id")),
        "unique_email_id": _text(member.get("unique_email_id")),
        "status": _text(member.get("status")),
        "list_id": _text(member.get("list_id")),
        "merge_fields": _text(merge),
        "stats_avg_open_rate": _number(stats.get("avg_open_rate")),
        "stats_avg_click_rate": _number(stats.get("avg_click_rate")),
        "stats_ecommerce_total_revenue": _number(ecommerce.get("total_revenue")),
        "stats_ecommerce_number_of_orders": _count(ecommerce.get("number_of_orders")),
        "stats_ecommerce_currency_code": _text(ecommerce.get("currency_code")),
    }


def flatten_activity(item: Json, campaign_id: str) -> Json:
    """One ``emails[]`` item as one MAILCHIMP_ACTIVITY_SCHEMA row (extra fields such as bounce
    type go)."""
    actions = item.get("activity")
    return {
        "campaign_id": _text(item.get("campaign_id")) or campaign_id,
        "list_id": _text(item.get("list_id")),
        "email_id": _text(item.get("email_id")),
        "email_address": _text(item.get("email_address")),
        "activity": [
            {name: _text(a.get(name)) for name in ("action", "timestamp", "url", "ip")}
            for a in (actions if isinstance(actions, list) else [])
            if isinstance(a, dict)
        ],
    }
