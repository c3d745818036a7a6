"""A fake Mailchimp Marketing API v3 for the client's tests.

A ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) serving the documented response shapes of
``/3.0/lists/{id}/members``, ``/3.0/campaigns`` and ``/3.0/reports/{id}/email-activity`` with
``count``/``offset`` paging, and the writes a segment sync makes: batch subscribe
(``POST /3.0/lists/{id}``: ``members``, ``update_existing``; answers ``new_members``,
``updated_members``, ``errors``), tags as static segments (``GET``/``POST
/3.0/lists/{id}/segments``, ``GET /3.0/lists/{id}/segments/{sid}/members``, ``POST
/3.0/lists/{id}/segments/{sid}`` with ``members_to_add``/``members_to_remove``). Addresses in
``invalid_emails`` make a batch subscribe answer 400 with per-member ``errors`` (``field``:
``members[i].email_address``), as Mailchimp's validation does; those in ``refused_emails`` are
listed in a 200's ``errors``. It checks HTTP Basic auth (any user, the key as password), records
every request, counts requests in flight, and plays scripted faults: a status (with
``Retry-After``), a malformed body or a dropped connection, for the next N matching requests or
forever. ``after_page`` runs after each page is served, so a test can change the audience while
the client pages through it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

Json = dict[str, Any]
MALFORMED = b'{"members": [{"id": "tr'


@dataclass(frozen=True)
class Fault:
    """A scripted failure: ``status`` (with ``retry_after``), ``malformed`` or ``drop``."""

    kind: str = "status"
    status: int = 500
    retry_after: str | None = None


@dataclass(frozen=True)
class Seen:
    path: str
    query: dict[str, str]
    authorized: bool
    method: str = "GET"
    body: Json | None = None


@dataclass
class _Script:
    path: str
    offset: int | None
    fault: Fault
    remaining: int | None  # None = forever


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


def member(i: int, list_id: str = "L1", last_changed: str = "2025-01-02T10:00:00+00:00") -> Json:
    """A member object shaped as GET /lists/{id}/members returns it."""
    email = f"user{i}@example.com"
    return {
        "id": hashlib.md5(email.encode()).hexdigest(),
        "email_address": email,
        "unique_email_id": f"euid{i:04d}",
        "contact_id": f"c{i}",
        "full_name": f"First{i} Last{i}",
        "web_id": 1000 + i,
        "email_type": "html",
        "status": "subscribed",
        "merge_fields": {
            "FNAME": f"First{i}",
            "LNAME": f"Last{i}",
            "ADDRESS": {
                "addr1": f"{i} High St",
                "addr2": "",
                "city": "Leeds",
                "state": "",
                "zip": "LS1",
                "country": "GB",
            },
            "PHONE": "",
            "BIRTHDAY": "01/31",
        },
        "stats": {
            "avg_open_rate": 0.5,
            "avg_click_rate": 0.25,
            "ecommerce_data": {
                "total_revenue": 12.5,
                "number_of_orders": 2,
                "currency_code": "GBP",
            },
        },
        "ip_signup": "",
        "timestamp_signup": "",
        "ip_opt": "10.0.0.1",
        "timestamp_opt": "2025-01-01T09:00:00+00:00",
        "member_rating": 3,
        "last_changed": last_changed,
        "language": "en",
        "vip": False,
        "email_client": "",
        "location": {
            "latitude": 53.8,
            "longitude": -1.55,
            "gmtoff": 0,
            "dstoff": 0,
            "country_code": "GB",
            "timezone": "Europe/London",
            "region": "ENG",
        },
        "source": "API - Generic",
        "tags_count": 2,
        "tags": [{"id": 1, "name": "VIP"}, {"id": 2, "name": "Spring 25"}],
        "list_id": list_id,
        "_links": [{"rel": "self", "href": "…", "method": "GET"}],
    }


def campaign(campaign_id: str, send_time: str, list_id: str = "L1") -> Json:
    return {
        "id": campaign_id,
        "web_id": 1,
        "type": "regular",
        "status": "sent",
        "send_time": send_time,
        "emails_sent": 2,
        "recipients": {"list_id": list_id},
        "settings": {"subject_line": f"Subject {campaign_id}", "title": campaign_id},
        "_links": [],
    }


def recipient(campaign_id: str, i: int, actions: list[Json], list_id: str = "L1") -> Json:
    """One ``emails[]`` item of GET /reports/{id}/email-activity."""
    email = f"user{i}@example.com"
    return {
        "campaign_id": campaign_id,
        "list_id": list_id,
        "list_is_active": True,
        "email_id": hashlib.md5(email.encode()).hexdigest(),
        "email_address": email,
        "activity": actions,
        "_links": [],
    }


class FakeMailchimp:
    """The fake API; use as a context manager (it starts and stops the server thread)."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.members: dict[str, list[Json]] = {}
        self.campaigns: list[Json] = []
        self.activity: dict[str, list[Json]] = {}
        self.delay_seconds = 0.0
        self.after_page: Callable[[str, int], None] | None = None
        self.requests: list[Seen] = []
        self.tags: dict[str, dict[int, Json]] = {}  # list id -> tag id -> {name, members}
        self.invalid_emails: set[str] = set()
        self.refused_emails: set[str] = set()
        self.max_in_flight = 0
        self._in_flight = 0
        self._scripts: list[_Script] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # -- scripting ------------------------------------------------------------------------------

    def fail(
        self, path: str, fault: Fault, times: int | None = 1, offset: int | None = None
    ) -> None:
        """The next ``times`` requests to ``path`` (at ``offset``) get ``fault``; None = forever."""
        with self._lock:
            self._scripts.append(_Script(path, offset, fault, times))

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.path == path)

    # -- serving --------------------------------------------------------------------------------

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def respond(
        self,
        target: str,
        authorization: str | None,
        method: str = "GET",
        body: Json | None = None,
    ) -> Reply:
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        authorized = self._authorized(authorization)
        with self._lock:
            self.requests.append(Seen(parts.path, query, authorized, method, body))
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if not authorized:
            return _problem(401, "API Key Invalid", "Your API key may be invalid.")
        fault = self._fault(parts.path, int(query.get("offset", 0)))
        if fault is not None:
            return _fault_reply(fault)
        if method == "POST":
            with self._lock:
                return self._write(parts.path, body or {})
        return self._route(parts.path, query)

    def tagged(self, list_id: str, name: str) -> set[str]:
        """The addresses holding tag ``name``."""
        with self._lock:
            for tag in self.tags.get(list_id, {}).values():
                if tag["name"] == name:
                    return set(tag["members"])
        return set()

    def _write(self, path: str, body: Json) -> Reply:
        segments = path.strip("/").split("/")
        match segments:
            case ["3.0", "lists", list_id]:
                return self._batch_subscribe(list_id, body)
            case ["3.0", "lists", list_id, "segments"]:
                tags = self.tags.setdefault(list_id, {})
                tag_id = 100 + len(tags)
                tags[tag_id] = {"name": body["name"], "members": set()}
                return _json(200, {"id": tag_id, "name": body["name"], "type": "static"})
            case ["3.0", "lists", list_id, "segments", tag_id] if int(tag_id) in self.tags.get(
                list_id, {}
            ):
                return self._retag(self.tags[list_id][int(tag_id)], body)
        return _problem(404, "Resource Not Found", "The requested resource could not be found.")

    def _batch_subscribe(self, list_id: str, body: Json) -> Reply:
        members = body.get("members", [])
        if len(members) > 500:
            return _problem(400, "Invalid Resource", "At most 500 members per request.")
        invalid = [
            {"field": f"members[{i}].email_address", "message": "Please provide a valid email"}
            for i, m in enumerate(members)
            if m["email_address"] in self.invalid_emails
        ]
        if invalid:
            reply = _problem(
                400, "Invalid Resource", "The resource submitted could not be validated."
            )
            problem = json.loads(reply.body)
            problem["errors"] = invalid
            return Reply(400, json.dumps(problem).encode(), reply.headers)
        audience = self.members.setdefault(list_id, [])
        by_email = {m["email_address"]: m for m in audience}
        new, updated, errors = [], [], []
        for item in members:
            email = item["email_address"]
            if email in self.refused_emails:
                errors.append(
                    {
                        "email_address": email,
                        "error": f"{email} has signed up to a lot of lists very recently",
                        "error_code": "ERROR_GENERIC",
                    }
                )
                continue
            existing = by_email.get(email)
            if existing is None:
                made = {
                    "id": hashlib.md5(email.encode()).hexdigest(),
                    "email_address": email,
                    "status": item.get("status_if_new", "subscribed"),
                    "merge_fields": dict(item.get("merge_fields", {})),
                    "last_changed": "2026-12-06T00:00:00+00:00",
                    "list_id": list_id,
                }
                audience.append(made)
                by_email[email] = made
                new.append(made)
            else:
                if "status" in item:
                    existing["status"] = item["status"]
                existing.setdefault("merge_fields", {}).update(item.get("merge_fields", {}))
                updated.append(existing)
        return _json(
            200,
            {
                "new_members": new,
                "updated_members": updated,
                "errors": errors,
                "total_created": len(new),
                "total_updated": len(updated),
                "error_count": len(errors),
            },
        )

    def _retag(self, tag: Json, body: Json) -> Reply:
        known = {m["email_address"] for ms in self.members.values() for m in ms}
        added, removed, missing = [], [], []
        for email in body.get("members_to_add", []):
            if email not in known:
                missing.append(email)
            elif email not in tag["members"]:
                tag["members"].add(email)
                added.append({"email_address": email})
        for email in body.get("members_to_remove", []):
            if email in tag["members"]:
                tag["members"].discard(email)
                removed.append({"email_address": email})
        errors = [{"email_addresses": missing, "error": "Email addresses not in the list"}]
        return _json(
            200,
            {
                "members_added": added,
                "members_removed": removed,
                "errors": errors if missing else [],
                "total_added": len(added),
                "total_removed": len(removed),
                "error_count": len(missing),
            },
        )

    def _authorized(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Basic "):
            return False
        decoded = base64.b64decode(authorization.removeprefix("Basic ")).decode()
        _, _, password = decoded.partition(":")
        return password == self.api_key

    def _fault(self, path: str, offset: int) -> Fault | None:
        with self._lock:
            for script in self._scripts:
                if script.path != path or script.offset not in (None, offset):
                    continue
                if script.remaining is None:
                    return script.fault
                if script.remaining > 0:
                    script.remaining -= 1
                    return script.fault
        return None

    def _route(self, path: str, query: dict[str, str]) -> Reply:
        segments = path.strip("/").split("/")
        match segments:
            case ["3.0", "lists", list_id, "members"] if list_id in self.members:
                items = _since(
                    self.members[list_id], "last_changed", query.get("since_last_changed")
                )
                return self._page(path, query, "members", items, {"list_id": list_id})
            case ["3.0", "campaigns"]:
                items = [c for c in self.campaigns if c["status"] == query.get("status", "sent")]
                items = _since(items, "send_time", query.get("since_send_time"))
                return self._page(path, query, "campaigns", items, {})
            case ["3.0", "lists", list_id, "segments"]:
                tags = [
                    {
                        "id": i,
                        "name": t["name"],
                        "type": "static",
                        "member_count": len(t["members"]),
                    }
                    for i, t in self.tags.get(list_id, {}).items()
                ]
                return self._page(path, query, "segments", tags, {"list_id": list_id})
            case ["3.0", "lists", list_id, "segments", tag_id, "members"] if int(
                tag_id
            ) in self.tags.get(list_id, {}):
                holders = sorted(self.tags[list_id][int(tag_id)]["members"])
                items = [{"email_address": e} for e in holders]
                return self._page(path, query, "members", items, {})
            case ["3.0", "reports", campaign_id, "email-activity"] if campaign_id in self.activity:
                items = self.activity[campaign_id]
                return self._page(path, query, "emails", items, {"campaign_id": campaign_id})
        return _problem(404, "Resource Not Found", "The requested resource could not be found.")

    def _page(
        self, path: str, query: dict[str, str], key: str, items: list[Json], extra: Json
    ) -> Reply:
        count = min(int(query.get("count", 10)), 1000)
        offset = int(query.get("offset", 0))
        body = {key: items[offset : offset + count], **extra, "total_items": len(items)}
        body["_links"] = [{"rel": "self", "href": path, "method": "GET"}]
        reply = Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
        if self.after_page is not None:
            self.after_page(path, offset)
        return reply


def _since(items: list[Json], key: str, since: str | None) -> list[Json]:
    if since is None:
        return list(items)
    start = dt.datetime.fromisoformat(since)
    return [i for i in items if dt.datetime.fromisoformat(i[key]) > start]


def _json(status: int, body: Json) -> Reply:
    return Reply(status, json.dumps(body).encode(), {"Content-Type": "application/json"})


def _problem(status: int, title: str, detail: str) -> Reply:
    body = {"type": "https://mailchimp.com/developer/", "title": title, "status": status}
    body["detail"] = detail
    return Reply(status, json.dumps(body).encode(), {"Content-Type": "application/problem+json"})


def _fault_reply(fault: Fault) -> Reply:
    if fault.kind == "drop":
        return Reply(0, drop=True)
    if fault.kind == "malformed":
        return Reply(200, MALFORMED, {"Content-Type": "application/json"})
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    reply = _problem(fault.status, "Scripted", "A scripted failure.")
    reply.headers.update(headers)
    return reply


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5  # an idle keep-alive connection ends its thread

    def do_GET(self) -> None:
        self._answer("GET", None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self._answer("POST", body)

    def _answer(self, method: str, body: Json | None) -> None:
        fake: FakeMailchimp = self.server.fake  # type: ignore[attr-defined]
        with fake.in_flight():
            reply = fake.respond(self.path, self.headers.get("Authorization"), method, body)
            if reply.drop:
                self.close_connection = True
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read ``FakeMailchimp.requests`` instead."""
