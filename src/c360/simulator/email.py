"""Email marketing: one Mailchimp audience, a campaign every few days, opens and clicks.

Members are the customers who opted in at sign-up, newsletter-only persons and a few guest
buyers, each from their subscription time on (some with another address than their account's).
Per campaign every subscribed member gets the mail; opens scale with engagement and the churn
decay, so churners stop opening; near churn people unsubscribe more. A hard bounce cleans the
member.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from c360.simulator import text, vocab
from c360.simulator.params import SITE, WorldParams
from c360.simulator.rand import keyed_hash
from c360.simulator.world import F64, I64, U8, Calendar, People

SUBSCRIBED, UNSUBSCRIBED, CLEANED = 1, 2, 3
STATUS_NAMES = {SUBSCRIBED: "subscribed", UNSUBSCRIBED: "unsubscribed", CLEANED: "cleaned"}
OPEN, CLICK, BOUNCE = 0, 1, 2


@dataclass
class Campaign:
    id: str
    web_id: int
    send_s: int
    title: str
    subject: str
    recipients: int = 0
    opens: int = 0
    unique_opens: int = 0
    clicks: int = 0
    unique_clickers: int = 0
    bounces: int = 0
    urls: list[str] = field(default_factory=list)


@dataclass
class Activity:
    """One campaign's email-activity rows: one per recipient, actions grouped by recipient."""

    campaign: Campaign
    member: I64  # recipient member rows
    action_member: I64  # per action: index into ``member`` (sorted by it, then time)
    action: U8
    action_s: I64
    action_url: I64


class Newsletter:
    def __init__(self, seed: int, people: People, calendar: Calendar, params: WorldParams) -> None:
        self.seed = seed
        self.people = people
        self.calendar = calendar
        self.params = params
        opt = people.mc_opt_s
        self.person = np.flatnonzero((opt >= 0) & (opt <= calendar.end_s)).astype(np.int64)
        self.person = self.person[np.argsort(opt[self.person], kind="stable")]  # by opt-in time
        emails = people.emails(self.person, people.mc_variant[self.person])
        ids = [hashlib.md5(e.lower().encode()).hexdigest() for e in emails]
        # One member per address: a household's shared mailbox is subscribed once, by the first.
        first = np.unique(np.asarray(ids, dtype=object), return_index=True)[1]
        if first.shape[0] < len(ids):
            keep = np.sort(first)
            self.person = self.person[keep]
            emails = [emails[i] for i in keep.tolist()]
            ids = [ids[i] for i in keep.tolist()]
        self.emails, self.ids = emails, ids
        k = self.person.shape[0]
        self.opt_s = opt[self.person]
        self.variant = people.mc_variant[self.person]
        h = keyed_hash(seed, 21, self.person)
        self.unique_email_id = text.to_str(text.hex_from_hashes(h, 10))
        self.web_id = (100_000_000 + (h % np.uint64(900_000_000))).astype(np.int64)
        self.ip = keyed_hash(seed, 22, self.person)
        self.has_phone = (people.phone[self.person] != 0) & (
            (h >> np.uint64(40)) % np.uint64(10) < 6
        )
        # the ADDRESS merge field: its own hash, so no other draw moves
        u = keyed_hash(seed, 25, self.person) >> np.uint64(11)
        self.has_address = u.astype(np.float64) / float(1 << 53) < params.newsletter_address_share
        self.status_change_s = np.full(k, -1, dtype=np.int64)
        self.final = np.full(k, SUBSCRIBED, dtype=np.uint8)
        self.sends = np.zeros(k, dtype=np.int64)
        self.opened = np.zeros(k, dtype=np.int64)
        self.clicked = np.zeros(k, dtype=np.int64)
        self.list_id = text.to_str(text.hex_from_hashes(keyed_hash(seed, 23, [0]), 10))[0]
        self.campaigns: list[Campaign] = []

    @property
    def members(self) -> int:
        return int(self.person.shape[0])

    def send(self, rng: np.random.Generator, day: int, factor: F64) -> Activity | None:
        """Send today's campaign (if one is due) and draw what each recipient does with it."""
        p = self.params
        if day % p.campaign_every_days != 0:
            return None
        number = len(self.campaigns)
        send_s = self.calendar.day_s(day) + 9 * 3600 + int(rng.integers(0, 3600))
        theme = vocab.CAMPAIGN_THEMES[number % len(vocab.CAMPAIGN_THEMES)]
        campaign = Campaign(
            id=text.to_str(text.hex_from_hashes(keyed_hash(self.seed, 24, [number]), 10))[0],
            web_id=1_000_000 + number * 13,
            send_s=send_s,
            title=f"Weekly {number + 1:03d} - {theme}",
            subject=f"{theme}: picked for you this week",
            urls=[
                f"{SITE}/c/{c[1]}?utm_source=mailchimp&utm_medium=email" for c in vocab.CATEGORIES
            ],
        )
        self.campaigns.append(campaign)
        end = self.calendar.end_s
        member = np.flatnonzero((self.opt_s <= send_s) & (self.status_change_s < 0))
        k = member.shape[0]
        person = self.person[member]
        f = factor[person]
        bounce = rng.random(k) < p.bounce_rate
        p_open = np.clip(p.open_rate * np.sqrt(self.people.engagement[person]) * f, 0, 0.95)
        opened = ~bounce & (rng.random(k) < p_open)
        clicked = opened & (rng.random(k) < p.click_given_open)
        n_opens = np.where(opened, 1 + np.minimum(rng.poisson(0.4, k), 4), 0)
        n_clicks = np.where(clicked, 1 + (rng.random(k) < 0.3), 0)
        unsub_p = p.unsubscribe_rate + p.churn_unsubscribe_rate * (1.0 - f)
        unsub = ~bounce & (rng.random(k) < unsub_p)

        # actions: bounce | opens (first within hours, later ones spread) | clicks after 1st open
        first_open = send_s + rng.exponential(4 * 3600, k).astype(np.int64) + 30
        o_member = np.repeat(np.arange(k), n_opens)
        o_rank = np.arange(o_member.shape[0]) - np.repeat(np.cumsum(n_opens) - n_opens, n_opens)
        o_time = first_open[o_member] + np.where(
            o_rank > 0, rng.exponential(18 * 3600, o_member.shape[0]).astype(np.int64) + 60, 0
        )
        c_member = np.repeat(np.arange(k), n_clicks)
        c_time = first_open[c_member] + rng.integers(5, 900, c_member.shape[0])
        c_url = rng.integers(0, len(campaign.urls), c_member.shape[0])
        b_member = np.flatnonzero(bounce)
        b_time = send_s + rng.integers(1, 120, b_member.shape[0])
        a_member = np.concatenate([o_member, c_member, b_member]).astype(np.int64)
        a_time = np.concatenate([o_time, c_time, b_time]).astype(np.int64)
        a_kind = np.concatenate(
            [np.full(o_member.shape[0], OPEN), np.full(c_member.shape[0], CLICK),
             np.full(b_member.shape[0], BOUNCE)]
        ).astype(np.uint8)  # fmt: skip
        a_url = np.concatenate(
            [np.full(o_member.shape[0], -1), c_url, np.full(b_member.shape[0], -1)]
        ).astype(np.int64)
        keep = a_time <= end
        a_member, a_time, a_kind, a_url = a_member[keep], a_time[keep], a_kind[keep], a_url[keep]
        order = np.lexsort((a_kind, a_time, a_member))
        a_member, a_time, a_kind, a_url = (
            a_member[order],
            a_time[order],
            a_kind[order],
            a_url[order],
        )

        # member state
        seen_open = np.zeros(k, dtype=bool)
        seen_open[a_member[a_kind == OPEN]] = True
        seen_click = np.zeros(k, dtype=bool)
        seen_click[a_member[a_kind == CLICK]] = True
        self.sends[member] += 1
        self.opened[member] += seen_open
        self.clicked[member] += seen_click
        cleaned_at = b_time
        bounced_rows = member[b_member]
        ok = cleaned_at <= end
        self.status_change_s[bounced_rows[ok]] = cleaned_at[ok]
        self.final[bounced_rows[ok]] = CLEANED
        unsub_rows = np.flatnonzero(unsub)
        unsub_at = send_s + rng.integers(3600, 72 * 3600, unsub_rows.shape[0])
        ok = unsub_at <= end
        self.status_change_s[member[unsub_rows[ok]]] = unsub_at[ok]
        self.final[member[unsub_rows[ok]]] = UNSUBSCRIBED

        campaign.recipients = k
        campaign.opens = int((a_kind == OPEN).sum())
        campaign.unique_opens = int(seen_open.sum())
        campaign.clicks = int((a_kind == CLICK).sum())
        campaign.unique_clickers = int(seen_click.sum())
        campaign.bounces = int((a_kind == BOUNCE).sum())
        return Activity(
            campaign=campaign,
            member=member.astype(np.int64),
            action_member=a_member,
            action=a_kind,
            action_s=a_time,
            action_url=a_url,
        )

    def last_changed(self) -> I64:
        return np.maximum(self.opt_s, self.status_change_s)

    def rating(self) -> I64:
        """Mailchimp's 1-5 star member rating, from engagement with the campaigns."""
        rate = self.opened / np.maximum(self.sends, 1)
        stars = 2 + np.round(3 * rate).astype(np.int64)
        stars[self.sends == 0] = 2
        stars[self.final == CLEANED] = 1
        return np.clip(stars, 1, 5)
