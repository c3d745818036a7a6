"""The static ShopSmart world: people (with their latent traits) and the product catalogue.

People are numpy arrays, not objects, so a million customers fit in a few hundred MB. Their
strings (emails, names, phones) are derived on demand from small integer codes, so the variants a
source shows (a typo, a work address, a capitalised letter) are stable for a person and the
ground truth can list exactly the ones that were used.

Layout: persons ``0..customers-1`` are registered customers ordered by sign-up time
(``customer_id = index + 1``), then guest-only persons, then newsletter-only persons.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from c360.simulator import vocab
from c360.simulator.households import form_households
from c360.simulator.params import SECONDS_PER_DAY, SITE, WorldParams
from c360.simulator.rand import Stream, stream

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

NEVER = 1 << 30  # a day index that never comes


class Kind(IntEnum):
    CUSTOMER = 0
    GUEST_ONLY = 1
    NEWSLETTER_ONLY = 2


class EmailVariant(IntEnum):
    """The forms in which a person's email address shows up in the sources."""

    PRIMARY = 0  # canonical, lower case
    ACCOUNT = 1  # as typed at sign-up (sometimes with a capital letter)
    WORK = 2  # a different address altogether
    TYPO = 3  # a mistyped primary (guest checkouts)
    TYPO_SUPPORT = 4  # another mistyped primary (support requesters)


class PhoneStyle(IntEnum):
    E164 = 0  # +4915123456789
    SPACED = 1  # +49 151 23456789
    NATIONAL = 2  # 0151 23456789


def _epoch_day(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days


def _swap(text: str, pos: int) -> str:
    pos = pos % (len(text) - 1)
    if text[pos] == text[pos + 1]:
        pos = (pos + 1) % (len(text) - 1)
    return text[:pos] + text[pos + 1] + text[pos] + text[pos + 2 :]


def _typo(text: str, kind: int, pos: int) -> str:
    """A visible typo in ``text`` (letters only); never returns ``text`` itself."""
    if len(text) < 3:
        return text + text[-1]
    if kind == 0:
        out = _swap(text, pos)
        return out if out != text else text[:-1]
    if kind == 1:
        pos = pos % len(text)
        return text[:pos] + text[pos + 1 :]
    pos = pos % len(text)
    return text[: pos + 1] + text[pos] + text[pos + 1 :]


def _phone(number: int, country: int, style: int) -> str | None:
    """A phone number (its national significant number; 0 = none) written in ``style``."""
    if number == 0:
        return None
    nsn, code = str(number), vocab.COUNTRIES[country][1]
    if style == PhoneStyle.E164:
        return f"+{code}{nsn}"
    if style == PhoneStyle.SPACED:
        return f"+{code} {nsn[:3]} {nsn[3:]}"
    return f"0{nsn[:3]} {nsn[3:]}"


def _email(
    first: int, last: int, tag: int, pattern: int, domain: int, company: int,
    capitalised: bool, typo_kind: int, typo_pos: int, variant: int, mailbox: str | None = None,
) -> str:  # fmt: skip
    f, la = vocab.FIRST_NAMES[first].lower(), vocab.LAST_NAMES[last].lower()
    if variant == EmailVariant.WORK:
        return f"{f}.{la}{tag}@{vocab.WORK_DOMAINS[company]}"
    if mailbox is not None:
        return _mailbox_variant(mailbox, domain, capitalised, typo_kind, typo_pos, variant)
    p = pattern
    name = f"{f}.{la}" if p == 0 else f[0] + la if p == 1 else f if p == 2 else f"{f}_{la}"
    dom = vocab.FREE_DOMAINS[domain]
    if variant in (EmailVariant.TYPO, EmailVariant.TYPO_SUPPORT):
        kind = (typo_kind + (variant == EmailVariant.TYPO_SUPPORT)) % 4
        if kind == 3:
            dom = vocab.DOMAIN_TYPOS[domain][typo_pos % 3]
        else:
            name = _typo(name, kind, typo_pos)
    local = f"{name}{tag}"
    if variant == EmailVariant.ACCOUNT and capitalised:
        local = local[0].upper() + local[1:]
    return f"{local}@{dom}"


def _mailbox_variant(
    mailbox: str, domain: int, capitalised: bool, typo_kind: int, typo_pos: int, variant: int
) -> str:
    """A household's shared address as one of its members shows it (own typos, own capital)."""
    local, _, dom = mailbox.partition("@")
    if variant in (EmailVariant.TYPO, EmailVariant.TYPO_SUPPORT):
        kind = (typo_kind + (variant == EmailVariant.TYPO_SUPPORT)) % 4
        if kind == 3:
            dom = vocab.DOMAIN_TYPOS[domain][typo_pos % 3]
        else:  # in the last dot-separated word, so no ".." appears
            head, dot, word = local.rpartition(".")
            local = head + dot + _typo(word, kind, typo_pos)
    elif variant == EmailVariant.ACCOUNT and capitalised:
        local = local[0].upper() + local[1:]
    return f"{local}@{dom}"


@dataclass
class Calendar:
    """The simulated period: ``days`` days from ``start`` (UTC midnight)."""

    start: dt.date
    days: int

    @property
    def start_day(self) -> int:
        return _epoch_day(self.start)

    @property
    def start_s(self) -> int:
        return self.start_day * SECONDS_PER_DAY

    @property
    def end_s(self) -> int:
        """The last simulated second (inclusive)."""
        return (self.start_day + self.days) * SECONDS_PER_DAY - 1

    def day_s(self, day: int) -> int:
        return (self.start_day + day) * SECONDS_PER_DAY


@dataclass
class People:
    """Every person of the world as parallel arrays (see the module docstring for the layout)."""

    customers: int
    guests: int
    newsletter_only: int
    kind: U8
    person_key: I64
    first: I32
    last: I32
    tag: I64  # unique number in every email local part: keeps addresses distinct across persons
    pattern: U8
    domain: U8
    company: U8
    capitalised: Bools  # typed the account email with a capital letter
    typo_kind: U8
    typo_pos: U8
    name_typo_pos: U8
    country: U8
    city: U8
    street: U8
    house: I32
    postcode: I32
    phone: I64  # national significant number; 0 = none given
    phone_style: U8  # how the customer typed it in the shop
    birth_day: I64  # days since epoch; -1 = unknown
    opt_in: Bools
    created_s: I64  # sign-up time (customers); -1 otherwise
    updated_s: I64
    signup_day: I64  # simulated day index of sign-up (negative: before the window)
    first_day: I64  # first day the person may visit
    churn_day: I64  # latent churn day index (NEVER if none)
    engagement: F64
    favourite: U8  # favourite product category
    devices: U8
    blocked: U8  # bit per device slot: an ad blocker drops its clickstream
    mc_opt_s: I64  # newsletter subscription time; -1 = never
    mc_variant: U8  # EmailVariant used for the newsletter
    household: I64  # the household's head (a person index), -1 if none (simulator/households.py)
    mailbox: I64  # index into ``mailboxes`` of the household's shared address, -1 if none
    mailboxes: list[str]  # the shared addresses (digit-free), one per mailbox household

    @property
    def n(self) -> int:
        return int(self.kind.shape[0])

    # --- strings, built on demand for a set of persons ------------------------------------

    def first_names(self, idx: I64) -> list[str]:
        names = vocab.FIRST_NAMES
        return [names[i] for i in self.first[idx].tolist()]

    def last_names(self, idx: I64, *, typo: Bools | None = None) -> list[str]:
        names = vocab.LAST_NAMES
        out = [names[i] for i in self.last[idx].tolist()]
        if typo is not None:
            pos = self.name_typo_pos[idx].tolist()
            for j in np.flatnonzero(typo).tolist():
                out[j] = out[j][0] + _typo(out[j][1:], 0, pos[j])
        return out

    def full_names(self, idx: I64, *, typo: Bools | None = None) -> list[str]:
        return [
            f"{f} {la}"
            for f, la in zip(self.first_names(idx), self.last_names(idx, typo=typo), strict=True)
        ]

    def emails(self, idx: I64, variant: EmailVariant | I64 | U8) -> list[str]:
        """The email address of each person in ``idx`` in the given variant(s)."""
        n = int(idx.shape[0])
        variants = np.broadcast_to(np.asarray(variant), (n,)).tolist()
        boxes = self.mailboxes
        return [
            _email(f, la, t, p, d, c, cap, tk, tp, v, boxes[m] if m >= 0 else None)
            for f, la, t, p, d, c, cap, tk, tp, v, m in zip(
                self.first[idx].tolist(), self.last[idx].tolist(), self.tag[idx].tolist(),
                self.pattern[idx].tolist(), self.domain[idx].tolist(), self.company[idx].tolist(),
                self.capitalised[idx].tolist(), self.typo_kind[idx].tolist(),
                self.typo_pos[idx].tolist(), variants, self.mailbox[idx].tolist(), strict=True,
            )
        ]  # fmt: skip

    def email(self, person: int, variant: int) -> str:
        """One person's address (cheaper than :meth:`emails` for a single value)."""
        return _email(
            int(self.first[person]), int(self.last[person]), int(self.tag[person]),
            int(self.pattern[person]), int(self.domain[person]), int(self.company[person]),
            bool(self.capitalised[person]), int(self.typo_kind[person]),
            int(self.typo_pos[person]), variant, self.shared_mailbox(person),
        )  # fmt: skip

    def shared_mailbox(self, person: int) -> str | None:
        """The address the person's household shares, if it shares one."""
        box = int(self.mailbox[person])
        return self.mailboxes[box] if box >= 0 else None

    def full_name(self, person: int, *, typo: bool = False) -> str:
        first = vocab.FIRST_NAMES[int(self.first[person])]
        last = vocab.LAST_NAMES[int(self.last[person])]
        if typo:
            last = last[0] + _typo(last[1:], 0, int(self.name_typo_pos[person]))
        return f"{first} {last}"

    def phones(self, idx: I64, style: PhoneStyle | U8) -> list[str | None]:
        n = int(idx.shape[0])
        styles = np.broadcast_to(np.asarray(style), (n,)).tolist()
        return [
            _phone(number, country, s)
            for number, country, s in zip(
                self.phone[idx].tolist(), self.country[idx].tolist(), styles, strict=True
            )
        ]

    def phone_of(self, person: int, style: int) -> str | None:
        """One person's phone in ``style`` (cheaper than :meth:`phones` for a single value)."""
        return _phone(int(self.phone[person]), int(self.country[person]), style)

    def postcodes(self, idx: I64) -> list[str]:
        codes = self.postcode[idx].tolist()
        country = self.country[idx].tolist()
        out = []
        for j in range(len(codes)):
            style = vocab.COUNTRIES[country[j]][2]
            c = codes[j]
            if style == "NL":
                out.append(f"{1000 + c % 9000} {chr(65 + c % 26)}{chr(65 + (c // 26) % 26)}")
            elif style == "4":
                out.append(f"{1000 + c % 9000}")
            else:
                out.append(f"{10000 + c % 90000:05d}")
        return out

    def cities(self, idx: I64) -> list[str]:
        return [
            vocab.COUNTRIES[c][4][t][0]
            for c, t in zip(self.country[idx].tolist(), self.city[idx].tolist(), strict=True)
        ]

    def regions(self, idx: I64) -> list[str]:
        return [
            vocab.COUNTRIES[c][4][t][1]
            for c, t in zip(self.country[idx].tolist(), self.city[idx].tolist(), strict=True)
        ]

    def countries(self, idx: I64) -> list[str]:
        return [vocab.COUNTRIES[c][0] for c in self.country[idx].tolist()]

    def address_lines(self, idx: I64) -> list[str]:
        return [
            f"{vocab.STREETS[s]} {h}"
            for s, h in zip(self.street[idx].tolist(), self.house[idx].tolist(), strict=True)
        ]


def _choice(rng: np.random.Generator, weights: tuple[float, ...], n: int) -> U8:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(weights), size=n, p=p / p.sum()).astype(np.uint8)


def make_people(seed: int, customers: int, calendar: Calendar, params: WorldParams) -> People:
    """Draw the population. Deterministic in ``seed`` and the sizes."""
    rng = stream(seed, Stream.PEOPLE)
    n_guest = round(customers * params.guest_only_per_customer)
    n_news = round(customers * params.newsletter_only_per_customer)
    n = customers + n_guest + n_news
    days = calendar.days
    kind = np.zeros(n, dtype=np.uint8)
    kind[customers : customers + n_guest] = Kind.GUEST_ONLY
    kind[customers + n_guest :] = Kind.NEWSLETTER_ONLY
    is_customer = kind == Kind.CUSTOMER

    # sign-up: before the window (pre-existing) or during it; customers are ordered by it
    pre = rng.random(customers) < params.preexisting_share
    signup_day = np.where(
        pre,
        -rng.integers(1, params.history_days + 1, customers),
        rng.integers(0, days, customers),
    )
    # new sign-ups happen while online in the day (session scheduling relies on this window)
    signup_tod = rng.integers(5_400, 79_200, customers)
    created_rel = np.sort(signup_day * SECONDS_PER_DAY + signup_tod)
    signup_day_sorted = created_rel // SECONDS_PER_DAY
    created_s = np.full(n, -1, dtype=np.int64)
    created_s[:customers] = calendar.start_s + created_rel
    signup = np.full(n, NEVER, dtype=np.int64)
    signup[:customers] = signup_day_sorted

    first_day = np.zeros(n, dtype=np.int64)
    lead = rng.integers(0, params.pre_signup_days + 1, customers)
    first_day[:customers] = np.maximum(0, signup_day_sorted - lead)
    first_day[customers:] = np.maximum(0, rng.integers(-days // 2, days, n - customers))

    # churn: inside the window, shortly after it, or never
    u = rng.random(n)
    joined = np.where(signup == NEVER, 0, np.clip(signup, 0, days))
    earliest = np.maximum(first_day, joined) + params.min_tenure_days
    churn_in = earliest + (rng.random(n) * np.maximum(days - earliest, 0)).astype(np.int64)
    churn_late = days + rng.integers(0, 90, n)
    churn_day = np.where(
        (u < params.churn_share) & (earliest < days),
        churn_in,
        np.where(u < params.churn_share + params.late_churn_share, churn_late, NEVER),
    )
    churn_day[kind == Kind.NEWSLETTER_ONLY] = NEVER

    sigma = params.engagement_sigma
    engagement = rng.lognormal(-(sigma**2) / 2, sigma, n)

    has_phone = rng.random(n) < 0.8
    phone = np.where(has_phone, rng.integers(150_000_000, 179_999_999, n), 0).astype(np.int64)
    has_birth = rng.random(n) < 0.9
    birth = calendar.start_day - rng.integers(18 * 365, 80 * 365, n)
    country = _choice(rng, vocab.COUNTRY_WEIGHTS, n)
    n_cities = np.asarray([len(c[4]) for c in vocab.COUNTRIES])
    city = (rng.random(n) * n_cities[country]).astype(np.uint8)

    updated = created_s.copy()
    touched = is_customer & (rng.random(n) < params.profile_update_share)
    span = np.maximum(calendar.end_s - np.maximum(created_s, calendar.start_s), 0)
    updated[touched] = np.maximum(created_s, calendar.start_s)[touched] + (
        rng.random(int(touched.sum())) * span[touched]
    ).astype(np.int64)

    opt_in = is_customer & (rng.random(n) < params.marketing_opt_in_share)
    mc_opt = np.full(n, -1, dtype=np.int64)
    mc_opt[opt_in] = created_s[opt_in] + rng.integers(5, 900, int(opt_in.sum()))
    news = kind == Kind.NEWSLETTER_ONLY
    news_day = rng.integers(-365, days, n)
    mc_opt[news] = (
        calendar.start_s
        + news_day[news] * SECONDS_PER_DAY
        + rng.integers(0, SECONDS_PER_DAY, int(news.sum()))
    )
    guest_sub = (kind == Kind.GUEST_ONLY) & (rng.random(n) < 0.2)
    mc_opt[guest_sub] = (
        calendar.start_s
        + first_day[guest_sub] * SECONDS_PER_DAY
        + rng.integers(0, 30 * SECONDS_PER_DAY, int(guest_sub.sum()))
    )
    mc_variant = np.where(
        rng.random(n) < params.newsletter_alt_email_share,
        EmailVariant.WORK,
        EmailVariant.PRIMARY,
    ).astype(np.uint8)

    devices = (1 + rng.binomial(params.max_devices - 1, 0.35, n)).astype(np.uint8)
    blocked_bits = rng.random((n, params.max_devices)) < params.tracking_blocked_share
    blocked = (blocked_bits * (1 << np.arange(params.max_devices))).sum(axis=1).astype(np.uint8)

    people = People(
        customers=customers,
        guests=n_guest,
        newsletter_only=n_news,
        kind=kind,
        person_key=(rng.permutation(n) + 1).astype(np.int64),
        first=rng.integers(0, len(vocab.FIRST_NAMES), n).astype(np.int32),
        last=rng.integers(0, len(vocab.LAST_NAMES), n).astype(np.int32),
        tag=(rng.permutation(n) + 1).astype(np.int64),
        pattern=rng.integers(0, 4, n).astype(np.uint8),
        domain=_choice(rng, vocab.FREE_DOMAIN_WEIGHTS, n),
        company=rng.integers(0, len(vocab.WORK_DOMAINS), n).astype(np.uint8),
        capitalised=rng.random(n) < 0.04,
        typo_kind=rng.integers(0, 4, n).astype(np.uint8),
        typo_pos=rng.integers(0, 250, n).astype(np.uint8),
        name_typo_pos=rng.integers(0, 250, n).astype(np.uint8),
        country=country,
        city=city,
        street=rng.integers(0, len(vocab.STREETS), n).astype(np.uint8),
        house=rng.integers(1, 200, n).astype(np.int32),
        postcode=rng.integers(0, 1_000_000, n).astype(np.int32),
        phone=phone,
        phone_style=rng.choice(2, n, p=[0.6, 0.4]).astype(np.uint8),
        birth_day=np.where(has_birth, birth, -1).astype(np.int64),
        opt_in=opt_in,
        created_s=created_s,
        updated_s=updated,
        signup_day=signup,
        first_day=first_day,
        churn_day=churn_day.astype(np.int64),
        engagement=engagement,
        favourite=_choice(rng, vocab.CATEGORY_WEIGHTS, n),
        devices=devices,
        blocked=blocked,
        mc_opt_s=mc_opt,
        mc_variant=mc_variant,
        household=np.full(n, -1, dtype=np.int64),
        mailbox=np.full(n, -1, dtype=np.int64),
        mailboxes=[],
    )
    form_households(seed, people, params)
    return people


@dataclass
class Catalog:
    """The products: ids ``1..n`` (index + 1), grouped by category for preference sampling."""

    category: I64
    name: list[str]
    sku: list[str]
    price_cents: I64
    created_s: I64
    slug: list[str]
    cdf: F64  # per-category popularity CDF, category c occupying [c, c + 1)
    by_category: I64  # product indices sorted by category (the order ``cdf`` follows)

    @property
    def n(self) -> int:
        return int(self.category.shape[0])

    def pick(self, rng: np.random.Generator, category: I64) -> I64:
        """One product index per entry of ``category``, by popularity within the category."""
        u = np.minimum(rng.random(category.shape[0]), 1 - 2e-9)
        pos = np.searchsorted(self.cdf, category + u, side="right")
        return np.asarray(self.by_category[np.minimum(pos, self.n - 1)], dtype=np.int64)


def make_catalog(seed: int, products: int, calendar: Calendar) -> Catalog:
    rng = stream(seed, Stream.CATALOG)
    cats = vocab.CATEGORIES
    category = _choice(rng, vocab.CATEGORY_WEIGHTS, products).astype(np.int64)
    category[: len(cats)] = np.arange(len(cats))  # every category has products
    category = rng.permutation(category)
    noun = rng.integers(0, 1 << 30, products)
    adjective = rng.integers(0, len(vocab.ADJECTIVES), products)
    names, skus, slugs = [], [], []
    for i, (c, nn, a) in enumerate(
        zip(category.tolist(), noun.tolist(), adjective.tolist(), strict=True)
    ):
        nouns = cats[c][3]
        name = f"{vocab.ADJECTIVES[a]} {nouns[nn % len(nouns)]}"
        names.append(name)
        skus.append(f"{cats[c][1][:3].upper()}-{i + 1:05d}")
        slugs.append(f"{name.lower().replace(' ', '-')}-{i + 1}")
    median = np.asarray([c[2] for c in cats], dtype=np.float64)[category]
    raw = median * rng.lognormal(0.0, 0.5, products)
    price = np.maximum(199, np.round(raw / 100) * 100 - 1).astype(np.int64)
    created = calendar.start_s - rng.integers(30, 3 * 365, products) * SECONDS_PER_DAY
    # popularity: Zipf-like weights in a random order within each category; category c's CDF
    # occupies [c, c + 1) so one searchsorted picks within any mix of categories
    weight = 1.0 / (1.0 + rng.permutation(products)) ** 0.8
    by_category = np.argsort(category, kind="stable")
    cdf = np.empty(products, dtype=np.float64)
    start = 0
    for c in range(len(cats)):
        count = int((category == c).sum())
        w = np.cumsum(weight[by_category[start : start + count]])
        cdf[start : start + count] = c + (w / w[-1]) * (1 - 1e-9)
        start += count
    return Catalog(
        category=category,
        name=names,
        sku=skus,
        price_cents=price,
        created_s=created.astype(np.int64),
        slug=slugs,
        cdf=cdf,
        by_category=by_category.astype(np.int64),
    )


def product_url(slug: str) -> str:
    return f"{SITE}/products/{slug}"
