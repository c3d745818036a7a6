"""Support tickets: when people contact ShopSmart and how each ticket unfolds.

Tickets come from orders (a share of orders, half of the refunds) and from a background rate
that triples as a person approaches churn. A ticket's whole life is drawn when it is opened:

    user.created (first ticket from that address) · ticket.created (NEW) ·
    agent comment + status NEW->OPEN · maybe a requester reply ·
    agent comment + OPEN->SOLVED · maybe a CSAT comment · SOLVED->CLOSED four days later

Events are queued and released day by day in time order; events after the end are dropped.

CSAT is a requester comment ``"Satisfaction rating: N/5. <remark>"`` that also adds the tag
``csat_N`` to the ticket from then on (scores fall as the person nears churn).
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from c360.simulator import text, vocab
from c360.simulator.orders import Orders
from c360.simulator.params import SECONDS_PER_DAY, WorldParams
from c360.simulator.world import F64, I64, Calendar, EmailVariant, Kind, People
from c360.simulator.writers import zendesk as zd

USER_ID_BASE = 361_000_000_000
AGENT_ID_BASE = 360_900_000_000
TICKET_ID_BASE = 1000
_ORDER_TOPICS = (0, 2, 3)
_OTHER_TOPICS = (4, 5, 6, 7)
_CSAT_P = np.asarray([0.05, 0.07, 0.13, 0.3, 0.45])


@dataclass(order=True)
class _Intent:
    time_s: int
    seq: int
    person: int = field(compare=False)
    order_id: int = field(compare=False)
    topic: int = field(compare=False)


@dataclass
class SupportLog:
    """What the ground truth needs: every Zendesk user and ticket with its person."""

    users: list[tuple[int, int]] = field(default_factory=list)  # (user id, person)
    tickets: list[tuple[int, int]] = field(default_factory=list)  # (ticket id, person)
    email_used: list[tuple[int, int]] = field(default_factory=list)  # (person, EmailVariant)
    phone_shown: list[int] = field(default_factory=list)  # persons whose user carries their phone


_HOUR = 3_600_000


class _Draws:
    """Every random number the tickets opened on one day need, drawn at once."""

    def __init__(
        self, rng: np.random.Generator, n: int, factor: F64, csat_share: float, phone_share: float
    ) -> None:
        self.jitter = rng.integers(0, 1000, n)
        self.second = rng.random(n) < 0.1
        self.variant = rng.random(n)
        self.name_typo = rng.random(n) < 0.1
        self.external = rng.random(n) < 0.25
        self.agent = rng.integers(0, len(vocab.AGENT_NAMES), n)
        self.priority = rng.choice(3, size=n, p=[0.3, 0.55, 0.15])
        self.web = rng.random(n) < 0.4
        self.first_response = rng.integers(_HOUR // 4, 24 * _HOUR, n)
        self.reply = rng.random(n) < 0.4
        self.reply_gap = rng.integers(_HOUR, 24 * _HOUR, n)
        self.resolve = (
            np.minimum(rng.exponential(24 * _HOUR, n), 5 * 24 * _HOUR).astype(np.int64) + _HOUR
        )
        self.csat = rng.random(n) < csat_share
        self.csat_gap = rng.integers(_HOUR, 48 * _HOUR, n)
        base = rng.choice(5, size=n, p=_CSAT_P) + 1
        self.score = np.maximum(1, base - rng.binomial(2, 1.0 - factor))
        self.answer = rng.integers(0, len(vocab.TICKET_REPLIES) - 1, n)
        self.remark = rng.integers(0, len(vocab.CSAT_REMARKS), n)
        raw = np.frombuffer(rng.bytes(16 * 9 * n), dtype=np.uint8).reshape(9 * n, 16)
        self.ids = np.asarray(text.to_str(text.uuids_from_bytes(raw)), dtype=object).reshape(n, 9)
        # drawn last, so every draw above is what it was before users had phones
        self.phone = rng.random(n) < phone_share


class Support:
    def __init__(self, seed: int, people: People, calendar: Calendar, params: WorldParams) -> None:
        self.seed = seed
        self.people = people
        self.calendar = calendar
        self.params = params
        self.user_of = np.zeros(people.n, dtype=np.int64)
        self.second_user_of = np.zeros(people.n, dtype=np.int64)
        self.variant_of = np.zeros(people.n, dtype=np.uint8)
        # Zendesk has one user per address: the person each address used so far belongs to.
        self.address_owner: dict[str, int] = {}
        self.intents: list[_Intent] = []
        self.pending: list[tuple[int, int, dict[str, Any]]] = []
        self.seq = 0
        self.next_ticket = TICKET_ID_BASE
        self.next_user = 0
        self.next_comment = 1
        self.log = SupportLog()

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def plan(self, rng: np.random.Generator, day: int, orders: Orders, factor: F64) -> None:
        """Queue the tickets that today's orders and moods will cause (now or later)."""
        p = self.params
        day_s = SECONDS_PER_DAY
        n = orders.n
        about = rng.random(n) < p.ticket_per_order
        when = orders.created_s + rng.integers(day_s, 10 * day_s, n)
        topic = np.asarray(_ORDER_TOPICS)[rng.integers(0, len(_ORDER_TOPICS), n)]
        refund = (orders.refund_s > 0) & (rng.random(n) < p.ticket_per_refund)
        refund_when = np.maximum(
            orders.refund_s - rng.integers(0, 2 * day_s, n), orders.created_s + 3600
        )
        for rows, times, topics in (
            (np.flatnonzero(about), when, topic),
            (np.flatnonzero(refund), refund_when, np.ones(n, dtype=np.int64)),
        ):
            for r in rows.tolist():
                heapq.heappush(
                    self.intents,
                    _Intent(int(times[r]), self._next_seq(), int(orders.person[r]),
                            int(orders.order_id[r]), int(topics[r])),
                )  # fmt: skip
        people = self.people
        active = factor > 0
        active &= people.kind != Kind.NEWSLETTER_ONLY
        rate = p.ticket_background_rate * (1.0 + 2.0 * (1.0 - factor))
        who = np.flatnonzero(active & (rng.random(people.n) < rate))
        start = self.calendar.day_s(day)
        times = start + rng.integers(0, day_s, who.shape[0])
        topics = np.asarray(_OTHER_TOPICS)[rng.integers(0, len(_OTHER_TOPICS), who.shape[0])]
        for w, t, c in zip(who.tolist(), times.tolist(), topics.tolist(), strict=True):
            heapq.heappush(self.intents, _Intent(t, self._next_seq(), w, 0, c))

    def release(self, rng: np.random.Generator, day: int, factor: F64) -> list[dict[str, Any]]:
        """Open today's tickets and return every payload due today, in time order."""
        end_of_day = self.calendar.day_s(day + 1)
        due: list[_Intent] = []
        while self.intents and self.intents[0].time_s < end_of_day:
            due.append(heapq.heappop(self.intents))
        if due:
            persons = np.asarray([i.person for i in due], dtype=np.int64)
            p = self.params
            draws = _Draws(
                rng, len(due), factor[persons], p.csat_answer_share, p.zendesk_phone_share
            )
            for j, intent in enumerate(due):  # in time order: ids grow with creation time
                self._open(draws, j, intent)
        out: list[dict[str, Any]] = []
        limit = end_of_day * 1000
        while self.pending and self.pending[0][0] < limit:
            out.append(heapq.heappop(self.pending)[2])
        return out

    def _push(self, time_ms: int, payload: dict[str, Any]) -> None:
        if time_ms <= self.calendar.end_s * 1000 + 999:
            heapq.heappush(self.pending, (time_ms, self._next_seq(), payload))

    def _requester(self, d: _Draws, j: int, person: int, time_ms: int) -> int:
        """The Zendesk user filing the ticket: created (user.created) on first contact."""
        people = self.people
        known = self.user_of[person] != 0
        second = known and d.second[j]
        if known and not second:
            return int(self.user_of[person])
        if second and self.second_user_of[person] != 0:
            return int(self.second_user_of[person])
        u = d.variant[j]
        if second:
            variant = EmailVariant.PRIMARY if self.variant_of[person] != 0 else EmailVariant.WORK
        elif people.kind[person] == Kind.CUSTOMER:
            variant = (
                EmailVariant.PRIMARY if u < 0.55 else EmailVariant.ACCOUNT if u < 0.6
                else EmailVariant.WORK if u < 0.8 else EmailVariant.TYPO_SUPPORT
            )  # fmt: skip
        else:
            variant = (
                EmailVariant.PRIMARY if u < 0.7
                else EmailVariant.TYPO_SUPPORT if u < 0.9 else EmailVariant.WORK
            )  # fmt: skip
        email = people.email(person, variant)
        owner = self.address_owner.setdefault(email.lower(), person)
        if owner != person:  # Zendesk knows the household's mailbox as the other person
            if second and self.variant_of[person] == EmailVariant.WORK:
                return int(self.user_of[person])  # their work address is their user already
            variant = EmailVariant.WORK
            email = people.email(person, variant)
        self.next_user += 1
        user_id = USER_ID_BASE + self.next_user * 7
        name = people.full_name(person, typo=bool(d.name_typo[j]))
        registered = (
            people.kind[person] == Kind.CUSTOMER and people.created_s[person] * 1000 < time_ms
        )
        external = str(person + 1) if registered and d.external[j] else None
        # as the person writes it (the shop's style: international, as Zendesk validates it)
        phone = people.phone_of(person, int(people.phone_style[person])) if d.phone[j] else None
        if second:
            self.second_user_of[person] = user_id
        else:
            self.user_of[person] = user_id
            self.variant_of[person] = variant
        self.log.users.append((user_id, person))
        self.log.email_used.append((person, int(variant)))
        if phone is not None:
            self.log.phone_shown.append(person)
        at = time_ms - 5_000
        self._push(
            at, zd.user_created(d.ids[j][8], _iso(at), user_id, email, name, external, phone)
        )
        return user_id

    def _open(self, d: _Draws, j: int, intent: _Intent) -> None:
        ticket_id = self.next_ticket
        self.next_ticket += 1
        t0 = intent.time_s * 1000 + int(d.jitter[j])
        requester = self._requester(d, j, intent.person, t0)
        self.log.tickets.append((ticket_id, intent.person))
        subject_tpl, tag, _ = vocab.TICKET_TOPICS[intent.topic]
        subject = subject_tpl.format(order=f"#{intent.order_id}")
        agent_no = int(d.agent[j])
        agent = AGENT_ID_BASE + agent_no
        agent_name = vocab.AGENT_NAMES[agent_no]
        requester_name = vocab.FIRST_NAMES[int(self.people.first[intent.person])]
        ticket = zd.Ticket(
            id=ticket_id,
            requester_id=requester,
            assignee_id=agent,
            created_at=_iso(t0),
            subject=subject,
            description=f"Hello, {subject.lower()}. Can you help?",
            priority=("LOW", "NORMAL", "HIGH")[int(d.priority[j])],
            type="INCIDENT" if intent.order_id else "QUESTION",
            channel="web" if d.web[j] else "email",
        )
        tags = [tag]
        t1 = t0 + int(d.first_response[j])
        reply = bool(d.reply[j])
        t2 = t1 + int(d.reply_gap[j])
        t3 = (t2 if reply else t1) + int(d.resolve[j])
        t4 = t3 + int(d.csat_gap[j])
        t5 = t3 + 4 * 24 * _HOUR
        score = int(d.score[j])
        ids = list(d.ids[j][:8])

        def emit(kind: str, at: int, status: str, actor: int, event: dict[str, Any]) -> None:
            payload = zd.ticket_event(
                kind, ids.pop(), _iso(at), ticket, status=status, actor_id=actor,
                tags=list(tags), assigned=at > t0, event=event,
            )  # fmt: skip
            self._push(at, payload)

        def said(body: str, staff: bool) -> dict[str, Any]:
            if staff:
                return self._comment(body, agent, agent_name, True)
            return self._comment(body, requester, requester_name, False)

        emit("created", t0, "NEW", requester, {})
        emit("comment_added", t1, "NEW", agent, said(vocab.TICKET_REPLIES[0], True))
        emit("status_changed", t1 + 1000, "OPEN", agent, zd.status_change("NEW", "OPEN"))
        if reply:
            emit("comment_added", t2, "OPEN", requester, said("Thanks, any update on this?", False))
        answer = vocab.TICKET_REPLIES[1 + int(d.answer[j])]
        emit("comment_added", t3, "OPEN", agent, said(answer, True))
        emit("status_changed", t3 + 1000, "SOLVED", agent, zd.status_change("OPEN", "SOLVED"))
        if d.csat[j]:
            remark = vocab.CSAT_REMARKS[int(d.remark[j])]
            tags.append(f"csat_{score}")
            body = f"Satisfaction rating: {score}/5. {remark}".strip()
            emit("comment_added", t4, "SOLVED", requester, said(body, False))
        emit("status_changed", t5, "CLOSED", agent, zd.status_change("SOLVED", "CLOSED"))

    def _comment(self, body: str, author: int, name: str, staff: bool) -> dict[str, Any]:
        self.next_comment += 1
        return zd.comment(self.next_comment, body, author_id=author, name=name, staff=staff)

    def used_users(self) -> tuple[I64, I64]:
        if not self.log.users:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        pairs = np.asarray(self.log.users, dtype=np.int64)
        return pairs[:, 0], pairs[:, 1]


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))
