"""Mailchimp files in Marketing API v3 shapes, plus the audience CSV export.

* ``members.jsonl``: ``/lists/{list_id}/members`` records (final state);
* ``campaigns.jsonl``: ``/campaigns`` records (type ``regular``, sent);
* ``email_activity.jsonl``: ``/reports/{campaign_id}/email-activity`` ``emails[]`` entries, one
  per recipient and campaign (``activity: []`` when the recipient did nothing);
* ``members_export.csv``: the audience export with Mailchimp's column names, all statuses in one
  file with an extra ``STATUS`` column (Mailchimp itself splits them into three files).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson

from c360.simulator import text, vocab
from c360.simulator.email import (
    BOUNCE,
    CLICK,
    OPEN,
    STATUS_NAMES,
    UNSUBSCRIBED,
    Activity,
    Newsletter,
)
from c360.simulator.world import I64, Kind, PhoneStyle

EXPORT_COLUMNS = (
    "Email Address", "First Name", "Last Name", "Address", "Phone Number", "Birthday",
    "MEMBER_RATING", "OPTIN_TIME", "CONFIRM_TIME", "LAST_CHANGED", "LEID", "EUID", "TIMEZONE",
    "CC", "REGION", "NOTES", "TAGS", "STATUS",
)  # fmt: skip
ADDRESS_PARTS = ("addr1", "addr2", "city", "state", "zip", "country")
_CHUNK = 20_000  # members per written chunk
SLICE_RECIPIENTS = 100_000  # rows formatted at once: bounds memory at any scale
_TAGS = {
    Kind.CUSTOMER: "customer",
    Kind.GUEST_ONLY: "guest-buyer",
    Kind.NEWSLETTER_ONLY: "newsletter",
}
_TAG_IDS = {Kind.CUSTOMER: 101, Kind.GUEST_ONLY: 102, Kind.NEWSLETTER_ONLY: 103}


def _mc_time(seconds: Any) -> list[str]:
    """Mailchimp's API timestamp form: ``2025-01-01T10:00:00+00:00``."""
    return text.to_str(text.timestamps(np.asarray(seconds) * 1000, fraction=0, suffix="+00:00"))


def _csv_time(seconds: Any) -> list[str]:
    """The export's timestamp form: ``2025-01-01 10:00:00``."""
    ms = np.asarray(seconds) * 1000
    return text.to_str(text.timestamps(ms, sep=" ", fraction=0, suffix=""))


class MailchimpFormatter:
    def __init__(self, newsletter: Newsletter) -> None:
        self.nl = newsletter
        idx = np.arange(newsletter.members)
        self.emails = text.words(newsletter.emails, idx)
        self.ids = text.words(newsletter.ids, idx)
        self.ips = text.ipv4(newsletter.ip)

    def activity_lines(self, activity: Activity) -> Iterator[memoryview]:
        """One campaign's email-activity rows, in slices of at most ``SLICE_RECIPIENTS``."""
        k = activity.member.shape[0]
        for start in range(0, k, SLICE_RECIPIENTS):
            stop = min(start + SLICE_RECIPIENTS, k)
            yield self._activity_slice(activity, start, stop)

    def _activity_slice(self, activity: Activity, start: int, stop: int) -> memoryview:
        campaign = activity.campaign
        lo, hi = np.searchsorted(activity.action_member, [start, stop])
        a_member = activity.action_member[lo:hi] - start
        action = activity.action[lo:hi]
        member = activity.member[start:stop]
        stamp = text.arrow(
            text.timestamps(activity.action_s[lo:hi] * 1000, fraction=0, suffix="+00:00")
        )
        ip = text.take(self.ips, member[a_member])
        urls = text.words(campaign.urls, np.maximum(activity.action_url[lo:hi], 0))
        at = '","timestamp":"'
        builders: dict[int, Callable[[I64], Any]] = {
            OPEN: lambda i: text.join(
                '{"action":"open', at, stamp.take(i), '","ip":"', ip.take(i), '"}'
            ),
            CLICK: lambda i: text.join(
                '{"action":"click', at, stamp.take(i), '","url":"', urls.take(i),
                '","ip":"', ip.take(i), '"}',
            ),
            BOUNCE: lambda i: text.join('{"action":"bounce","type":"hard', at, stamp.take(i), '"}'),
        }  # fmt: skip
        groups = []
        for code, build in builders.items():
            rows = np.flatnonzero(action == code)
            if rows.shape[0]:
                groups.append((rows, build(rows)))
        actions = text.scatter(groups, a_member.shape[0])
        counts = np.bincount(a_member, minlength=stop - start)
        joined = text.group_join(actions, counts, ",")
        lines = text.join(
            '{"campaign_id":"', campaign.id, '","list_id":"', self.nl.list_id,
            '","list_is_active":true,"email_id":"', text.take(self.ids, member),
            '","email_address":"', text.take(self.emails, member),
            '","activity":[', joined, "]}\n",
        )  # fmt: skip
        return text.concatenated(lines)

    def _fields(self, rows: I64) -> dict[str, list[Any]]:
        """Everything the member files show, for the members at ``rows``, as Python lists."""
        nl, people = self.nl, self.nl.people
        person = nl.person[rows]
        phones = people.phones(person, PhoneStyle.NATIONAL)
        addresses = self._addresses(rows)
        birth = people.birth_day[person]
        bday = text.to_str(text.dates(np.maximum(birth, 0)))
        sends = np.maximum(nl.sends[rows], 1)
        last_changed = nl.last_changed()[rows]
        return {
            "email": [nl.emails[j] for j in rows.tolist()],
            "id": [nl.ids[j] for j in rows.tolist()],
            "euid": [nl.unique_email_id[j] for j in rows.tolist()],
            "first": people.first_names(person),
            "last": people.last_names(person),
            "phone": [
                ph if has and ph else ""
                for ph, has in zip(phones, nl.has_phone[rows].tolist(), strict=True)
            ],
            # the API's ADDRESS object ("" when empty) and the export's form of it: the
            # filled parts joined by two spaces
            "address": [a or "" for a in addresses],
            "address_csv": [
                "  ".join(a[k] for k in ADDRESS_PARTS if a[k]) if a else "" for a in addresses
            ],
            "birthday": [
                f"{b[5:7]}/{b[8:10]}" if d >= 0 else ""
                for b, d in zip(bday, birth.tolist(), strict=True)
            ],
            "country": [vocab.COUNTRIES[c] for c in people.country[person].tolist()],
            "region": people.regions(person),
            "kind": [Kind(k) for k in people.kind[person].tolist()],
            "opt": _mc_time(nl.opt_s[rows]),
            "changed": _mc_time(last_changed),
            "opt_csv": _csv_time(nl.opt_s[rows]),
            "confirm_csv": _csv_time(nl.opt_s[rows] + 7),
            "changed_csv": _csv_time(last_changed),
            "rating": nl.rating()[rows].tolist(),
            "open_rate": (nl.opened[rows] / sends).round(2).tolist(),
            "click_rate": (nl.clicked[rows] / sends).round(2).tolist(),
            "ip": self.ips.take(rows).to_pylist(),
            "web_id": nl.web_id[rows].tolist(),
            "status": [STATUS_NAMES[x] for x in nl.final[rows].tolist()],
        }

    def _addresses(self, rows: I64) -> list[dict[str, str] | None]:
        """The ADDRESS merge field of the members at ``rows`` (None where it is empty): the
        person's home address as the shop's orders ship to it, no second line."""
        nl, people = self.nl, self.nl.people
        out: list[dict[str, str] | None] = [None] * rows.shape[0]
        filled = np.flatnonzero(nl.has_address[rows])
        person = nl.person[rows[filled]]
        for j, line, city, state, code, country in zip(
            filled.tolist(), people.address_lines(person), people.cities(person),
            people.regions(person), people.postcodes(person), people.country[person].tolist(),
            strict=True,
        ):  # fmt: skip
            out[j] = {
                "addr1": line, "addr2": "", "city": city, "state": state, "zip": code,
                "country": vocab.COUNTRIES[country][0],
            }  # fmt: skip
        return out

    def _chunks(self) -> Iterator[dict[str, list[Any]]]:
        for start in range(0, self.nl.members, _CHUNK):
            yield self._fields(np.arange(start, min(start + _CHUNK, self.nl.members)))

    def member_lines(self) -> Iterator[bytes]:
        """Members as JSON lines, in chunks (the file is written as it is produced)."""
        list_id = self.nl.list_id
        for f in self._chunks():
            out = io.BytesIO()
            for j in range(len(f["id"])):
                country = f["country"][j]
                kind = f["kind"][j]
                record: dict[str, Any] = {
                    "id": f["id"][j],
                    "email_address": f["email"][j],
                    "unique_email_id": f["euid"][j],
                    "full_name": f"{f['first'][j]} {f['last'][j]}",
                    "web_id": f["web_id"][j],
                    "email_type": "html",
                    "status": f["status"][j],
                    "merge_fields": {
                        "FNAME": f["first"][j],
                        "LNAME": f["last"][j],
                        "ADDRESS": f["address"][j],
                        "PHONE": f["phone"][j],
                        "BIRTHDAY": f["birthday"][j],
                    },
                    "stats": {
                        "avg_open_rate": f["open_rate"][j],
                        "avg_click_rate": f["click_rate"][j],
                    },
                    "ip_signup": "",
                    "timestamp_signup": "",
                    "ip_opt": f["ip"][j],
                    "timestamp_opt": f["opt"][j],
                    "member_rating": f["rating"][j],
                    "last_changed": f["changed"][j],
                    "language": "",
                    "vip": False,
                    "email_client": "",
                    "location": {
                        "latitude": 0,
                        "longitude": 0,
                        "gmtoff": 0,
                        "dstoff": 0,
                        "country_code": country[0],
                        "timezone": country[3],
                        "region": f["region"][j],
                    },
                    "source": "API - Generic" if kind == Kind.CUSTOMER else "Hosted Signup Form",
                    "tags_count": 1,
                    "tags": [{"id": _TAG_IDS[kind], "name": _TAGS[kind]}],
                    "list_id": list_id,
                }
                if f["status"][j] == STATUS_NAMES[UNSUBSCRIBED]:
                    record["unsubscribe_reason"] = "N/A (Unsubscribed by user)"
                out.write(orjson.dumps(record))
                out.write(b"\n")
            yield out.getvalue()

    def campaign_lines(self) -> bytes:
        nl = self.nl
        out = io.BytesIO()
        for c in nl.campaigns:
            send = _mc_time([c.send_s])[0]
            create = _mc_time([c.send_s - 2 * 86_400])[0]
            record = {
                "id": c.id,
                "web_id": c.web_id,
                "type": "regular",
                "create_time": create,
                "archive_url": f"https://mailchi.mp/shopsmart/{c.id}",
                "status": "sent",
                "emails_sent": c.recipients,
                "send_time": send,
                "content_type": "template",
                "recipients": {
                    "list_id": nl.list_id,
                    "list_is_active": True,
                    "list_name": "ShopSmart Newsletter",
                    "recipient_count": c.recipients,
                },
                "settings": {
                    "subject_line": c.subject,
                    "preview_text": "Fresh picks from ShopSmart",
                    "title": c.title,
                    "from_name": "ShopSmart",
                    "reply_to": "news@shopsmart.example",
                },
                "report_summary": {
                    "opens": c.opens,
                    "unique_opens": c.unique_opens,
                    "open_rate": round(c.unique_opens / max(c.recipients, 1), 4),
                    "clicks": c.clicks,
                    "subscriber_clicks": c.unique_clickers,
                    "click_rate": round(c.unique_clickers / max(c.recipients, 1), 4),
                },
            }
            out.write(orjson.dumps(record))
            out.write(b"\n")
        return out.getvalue()

    def export_csv(self) -> Iterator[bytes]:
        """The audience export (with a STATUS column), in chunks."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        for f in self._chunks():
            for j in range(len(f["id"])):
                country = f["country"][j]
                writer.writerow(
                    (
                        f["email"][j], f["first"][j], f["last"][j], f["address_csv"][j],
                        f["phone"][j], f["birthday"][j], f["rating"][j], f["opt_csv"][j],
                        f["confirm_csv"][j], f["changed_csv"][j], f["web_id"][j], f["euid"][j],
                        country[3], country[0], f["region"][j], "", f'"{_TAGS[f["kind"][j]]}"',
                        f["status"][j],
                    )
                )  # fmt: skip
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
