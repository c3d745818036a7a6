"""Zendesk event-webhook payloads (ticket and user events), shaped as Zendesk documents them.

Ticket events use ``zendesk_event_version`` 2022-11-06 and carry the ticket in ``detail`` with
string ids and upper-case enums; user events use 2022-06-20 (the user-event schema's version).

*Departure:* a user event's ``detail`` here holds the user resource's ``name`` and ``phone``
besides the properties Zendesk lists for it (created_at, email, external_id, default_group_id,
id, organization_id, role, updated_at); Zendesk itself sends those two in later events
(``user.name_changed``, ``user.identity_created`` with a ``phone_number`` identity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACCOUNT_ID = 9_100_123
BRAND_ID = "360000001111"
FORM_ID = "360000002222"
GROUP_ID = "360000003333"
TICKET_VERSION = "2022-11-06"
USER_VERSION = "2022-06-20"
# custom status ids of the default statuses
CUSTOM_STATUS = {
    "NEW": "360000100001",
    "OPEN": "360000100002",
    "PENDING": "360000100003",
    "SOLVED": "360000100004",
    "CLOSED": "360000100005",
}


@dataclass
class Ticket:
    """What every payload of one ticket repeats."""

    id: int
    requester_id: int
    assignee_id: int
    created_at: str
    subject: str
    description: str
    priority: str
    type: str
    channel: str
    _base: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def base(self) -> dict[str, Any]:
        """The ``detail`` fields that never change over the ticket's life."""
        if self._base is None:
            self._base = {
                "brand_id": BRAND_ID,
                "created_at": self.created_at,
                "description": self.description,
                "external_id": None,
                "form_id": FORM_ID,
                "group_id": GROUP_ID,
                "id": str(self.id),
                "is_public": True,
                "organization_id": None,
                "priority": self.priority,
                "requester_id": str(self.requester_id),
                "subject": self.subject,
                "submitter_id": str(self.requester_id),
                "type": self.type,
                "via": {"channel": self.channel},
            }
        return self._base


def user_created(
    event_id: str,
    time: str,
    user_id: int,
    email: str,
    name: str,
    external_id: str | None,
    phone: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "zen:event-type:user.created",
        "account_id": ACCOUNT_ID,
        "id": event_id,
        "time": time,
        "zendesk_event_version": USER_VERSION,
        "subject": f"zen:user:{user_id}",
        "detail": {
            "created_at": time,
            "email": email,
            "external_id": external_id,
            "default_group_id": "0",
            "id": str(user_id),
            "name": name,
            "organization_id": "0",
            "phone": phone,
            "role": "end-user",
            "updated_at": time,
        },
        "event": {},
    }


def ticket_event(
    kind: str,
    event_id: str,
    time: str,
    ticket: Ticket,
    *,
    status: str,
    actor_id: int,
    tags: list[str],
    assigned: bool,
    event: dict[str, Any],
) -> dict[str, Any]:
    """A ``zen:event-type:ticket.<kind>`` payload with the ticket as it is after the event."""
    return {
        "type": f"zen:event-type:ticket.{kind}",
        "account_id": ACCOUNT_ID,
        "id": event_id,
        "time": time,
        "zendesk_event_version": TICKET_VERSION,
        "subject": f"zen:ticket:{ticket.id}",
        "detail": {
            **ticket.base(),
            "actor_id": str(actor_id),
            "assignee_id": str(ticket.assignee_id) if assigned else None,
            "custom_status": CUSTOM_STATUS[status],
            "status": status,
            "tags": tags,
            "updated_at": time,
        },
        "event": event,
    }


def status_change(previous: str, current: str) -> dict[str, Any]:
    return {"current": current, "previous": previous}


def comment(
    comment_id: int, body: str, *, author_id: int, name: str, staff: bool
) -> dict[str, Any]:
    return {
        "comment": {
            "id": str(comment_id),
            "body": body,
            "is_public": True,
            "author": {"id": str(author_id), "is_staff": staff, "name": name},
        }
    }
