"""Who is active on a day: rates with churn decay and seasonality, sessions and devices.

Each person has a latent engagement and a churn day. Over the ``decay_days`` before the churn day
the activity factor falls linearly from 1 to 0 (visits scale with it, orders with its 1.5th power,
email opens with it); from the churn day on the person does nothing. Non-churners keep factor 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from c360.simulator.params import WorldParams
from c360.simulator.rand import keyed_hash
from c360.simulator.text import civil_from_days
from c360.simulator.world import F64, I64, U8, Bools, Calendar, EmailVariant, Kind, People

NO_GUEST = 255  # guest_variant of a session that is not a guest checkout

# Relative traffic per hour of day (UTC), evening peak.
_HOURLY = np.asarray(
    [2, 1, 1, 1, 1, 2, 4, 6, 8, 9, 10, 11, 12, 12, 11, 11, 12, 13, 15, 17, 18, 16, 11, 6],
    dtype=np.float64,
)
# (earliest, latest) session start second of the day by part: whole day, morning, evening.
# Sessions last at most SESSION_MAX_S, so two sessions of a person are > 30 minutes apart and the
# last one ends before midnight (the next day's first session starts at 00:30 at the earliest).
SESSION_MAX_S = 3_500
WINDOWS = ((1_800, 82_799), (1_800, 39_599), (45_060, 82_799))
ANY, MORNING, EVENING = 0, 1, 2


def activity_factor(people: People, day: int, params: WorldParams) -> F64:
    """1 while active, falling linearly to 0 over the decay window; 0 before start, after churn."""
    to_churn = (people.churn_day - day).astype(np.float64)
    factor = np.clip(to_churn / params.decay_days, 0.0, 1.0)
    factor[people.first_day > day] = 0.0
    return factor


def season(calendar: Calendar, day: int, params: WorldParams) -> float:
    epoch_day = calendar.start_day + day
    weekday = (epoch_day + 3) % 7  # 0 = Monday
    _, month, dom = civil_from_days([epoch_day])
    doy_like = int(month[0]) * 31 + int(dom[0])  # a rough day-of-year, fine for a bump
    holiday = np.exp(-(((doy_like - (11 * 31 + 25)) / 14.0) ** 2))
    factor = params.weekend_boost if weekday >= 5 else 1.0
    return float(factor * (1.0 + params.holiday_boost * holiday))


@dataclass
class Devices:
    """Per person and device slot: cookie generation, login state, whether its cookie was seen."""

    gen: npt.NDArray[np.int64]
    logged_in: Bools
    used: Bools
    retired: list[I64]  # anonymous-id codes of cookies that were seen and then cleared

    @classmethod
    def empty(cls, persons: int, slots: int) -> Devices:
        shape = (persons, slots)
        return cls(np.zeros(shape, np.int64), np.zeros(shape, bool), np.zeros(shape, bool), [])

    def codes(self, person: I64, slot: I64, gen: I64) -> I64:
        return anon_code(person, slot, gen, self.gen.shape[1])

    def seen_codes(self) -> I64:
        """Codes of every cookie that ever emitted a clickstream event."""
        person, slot = np.nonzero(self.used)
        current = self.codes(person.astype(np.int64), slot.astype(np.int64), self.gen[person, slot])
        return np.concatenate([*self.retired, current]) if self.retired else current


def anon_code(person: I64, slot: I64, gen: I64, slots: int) -> I64:
    """One integer per cookie: (person, device slot, cookie generation)."""
    return ((person * slots + slot) << 16) | gen


def anon_ids(seed: int, codes: I64) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """The two 64-bit halves of a cookie's anonymousId (a UUID)."""
    return keyed_hash(seed, 11, codes), keyed_hash(seed, 12, codes)


@dataclass
class Sessions:
    """The day's sessions (tracked or not), one row each, in a deterministic order."""

    person: I64
    slot: I64
    gen: I64
    part: I64  # ANY, MORNING or EVENING
    buy: Bools
    signup: Bools
    login: Bools  # logs in during the session (an identify call)
    logged_in: Bools  # device already logged in at the start
    tracked: Bools
    customer_id: I64  # the account the session ends up in (0 = anonymous)
    guest_variant: U8  # EmailVariant of a guest checkout, NO_GUEST otherwise

    @property
    def n(self) -> int:
        return int(self.person.shape[0])


def plan_sessions(
    rng: np.random.Generator,
    people: People,
    devices: Devices,
    factor: F64,
    day: int,
    season_factor: float,
    params: WorldParams,
) -> Sessions:
    """Draw who visits and buys today, on which device, logged in or not; update device state."""
    kind = people.kind
    engagement = people.engagement * season_factor
    customer = kind == Kind.CUSTOMER
    guest = kind == Kind.GUEST_ONLY
    order_rate = np.where(customer, params.order_rate, 0.0)
    order_rate = np.where(guest, params.guest_only_order_rate, order_rate)
    order_rate = order_rate * engagement * factor**1.5
    browse_rate = np.where(
        kind == Kind.NEWSLETTER_ONLY, params.newsletter_browse_rate, params.browse_rate
    )
    browse_rate = browse_rate * engagement * factor
    n = people.n
    buy = rng.random(n) < np.minimum(order_rate, 0.6)
    browse = rng.random(n) < np.minimum(browse_rate, 0.8)
    signup = customer & (people.signup_day == day)
    browse &= ~signup

    first = np.flatnonzero(buy | signup)
    second = np.flatnonzero(browse)
    person = np.concatenate([first, second]).astype(np.int64)
    is_buy = np.concatenate([buy[first], np.zeros(second.shape[0], bool)])
    is_signup = np.concatenate([signup[first], np.zeros(second.shape[0], bool)])
    both = (buy & browse)[person]
    buy_first = rng.random(n) < 0.5
    part = np.where(both, np.where(is_buy == buy_first[person], MORNING, EVENING), ANY)
    order = np.lexsort((part, person))
    person, is_buy, is_signup, part = person[order], is_buy[order], is_signup[order], part[order]
    m = person.shape[0]

    slot = (rng.random(m) * people.devices[person]).astype(np.int64)
    reset = rng.random(m) < params.cookie_reset_rate
    if np.any(reset):
        rp, rs = person[reset], slot[reset]
        rp, rs = _unique_pairs(rp, rs, devices.gen.shape[1])
        seen = devices.used[rp, rs]
        if seen.any():
            devices.retired.append(
                devices.codes(rp[seen], rs[seen], devices.gen[rp[seen], rs[seen]])
            )
        devices.gen[rp, rs] += 1
        devices.logged_in[rp, rs] = False
        devices.used[rp, rs] = False
    gen = devices.gen[person, slot]
    logged_in = devices.logged_in[person, slot]
    tracked = ((people.blocked[person].astype(np.int64) >> slot) & 1) == 0

    registered = customer[person] & (people.signup_day[person] < day)
    login_p = np.where(is_buy, params.login_on_purchase, params.login_on_browse)
    login = registered & ~logged_in & (rng.random(m) < login_p)
    logged_after = logged_in | login | is_signup
    customer_id = np.where(logged_after, person + 1, 0)

    guest_checkout = is_buy & ~logged_after
    u = rng.random(m)
    variant = np.where(
        registered,
        np.where(u < 0.6, EmailVariant.WORK, EmailVariant.TYPO),
        np.where(
            u < 0.75, EmailVariant.PRIMARY, np.where(u < 0.9, EmailVariant.TYPO, EmailVariant.WORK)
        ),
    )
    guest_variant = np.where(guest_checkout, variant, NO_GUEST).astype(np.uint8)

    devices.logged_in[person[logged_after], slot[logged_after]] = True
    devices.used[person[tracked], slot[tracked]] = True
    return Sessions(
        person=person,
        slot=slot,
        gen=gen,
        part=part.astype(np.int64),
        buy=is_buy,
        signup=is_signup,
        login=login,
        logged_in=logged_in,
        tracked=tracked,
        customer_id=customer_id.astype(np.int64),
        guest_variant=guest_variant,
    )


def _unique_pairs(person: I64, slot: I64, slots: int) -> tuple[I64, I64]:
    key = np.unique(person * slots + slot)
    return key // slots, key % slots


def start_times(rng: np.random.Generator, part: I64, duration_s: F64) -> F64:
    """Session start (seconds into the day) by time-of-day profile inside the part's window."""
    start = np.empty(part.shape[0], dtype=np.float64)
    for which, (lo, hi) in enumerate(WINDOWS):
        rows = np.flatnonzero(part == which)
        if rows.shape[0] == 0:
            continue
        hours = np.arange(lo // 3600, hi // 3600 + 1)
        weight = _HOURLY[hours] / _HOURLY[hours].sum()
        hour = rng.choice(hours, size=rows.shape[0], p=weight)
        second = hour * 3600.0 + rng.random(rows.shape[0]) * 3600.0
        latest = hi - duration_s[rows]
        start[rows] = np.clip(second, lo, latest)
    return start
