"""Households: two people at one address who share a mailbox and/or a home phone.

Couples and families often give a shop one email address — a digit-free personal address
(``anna.smith@gmail.com``) or a family one (``the.smiths@…``, ``smith.family@…``,
``anna.and.tom@…``) — and one home phone. For identity resolution such a value is no proof
that two records are one person, so the world has some, with the ground truth of who is who.

A household is a pair of persons drawn at random (any kind: customers, guest-only,
newsletter-only). The *member* moves in with the *head*: the head's address (country, city,
street, house, postcode), usually (70 %) the head's surname, and a first name other than the
head's. Mailbox households then give both the shared address as their own (primary) address —
account, guest checkouts, support, newsletter; each keeps their own work address and their own
typos of the shared one. Phone households give the member the head's number.

Sizes: ``WorldParams.shared_email_share`` is the share of the email keys the sources show that
belong to two or more people (each mailbox household shares one; a person shows about
:data:`EMAIL_KEYS_PER_PERSON` keys); ``shared_phone_share`` the share of phone numbers shared
(both measured on the world's ground truth: about the asked share, not exactly).
Half of the phone households are mailbox households too. Every draw comes from the
``HOUSEHOLDS`` stream, so the rest of the world (who visits and buys what, when) is the one the
same seed gives without households.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from c360.simulator import vocab
from c360.simulator.params import WorldParams
from c360.simulator.rand import Stream, stream

if TYPE_CHECKING:  # world.py calls this module while it draws the people
    from c360.simulator.world import I64, People

# Turning shares into numbers of households, as measured on the default worlds: the sources
# show 1.27 distinct email keys and 0.73 phone numbers per person, and both people of a
# household show the shared address in 85 % of mailbox households (a newsletter-only member's
# subscription is the head's), the shared phone in 50 % (orders carry a phone 75 % of the time).
EMAIL_KEYS_PER_PERSON = 1.27
BOTH_SHOW_MAILBOX = 0.85
PHONES_PER_PERSON = 0.73
BOTH_SHOW_PHONE = 0.5
SAME_SURNAME = 0.7
# Local parts of a shared mailbox: f/l the head's first and last name, g the member's first.
_FORMS = ("{f}.{l}", "{f}{l}", "{l}.family", "the.{l}s", "{f}.and.{g}")
_FORM_WEIGHTS = (0.4, 0.2, 0.15, 0.1, 0.15)
_FALLBACK = "{f}.{g}.{l}"


def form_households(seed: int, people: People, params: WorldParams) -> None:
    """Draw the households and rewrite their members' traits in place (see the module docs)."""
    n = people.n
    mailbox_pairs = round(params.shared_email_share * EMAIL_KEYS_PER_PERSON / BOTH_SHOW_MAILBOX * n)
    phone_pairs = round(params.shared_phone_share * PHONES_PER_PERSON / BOTH_SHOW_PHONE * n)
    both = min(mailbox_pairs, phone_pairs // 2)
    total = min(mailbox_pairs + phone_pairs - both, n // 2)
    if total == 0:
        return
    rng = stream(seed, Stream.HOUSEHOLDS)
    chosen = rng.permutation(n)[: 2 * total].reshape(total, 2).astype(np.int64)
    head, member = chosen[:, 0], chosen[:, 1]
    shares_mailbox = np.arange(total) < mailbox_pairs
    shares_phone = (np.arange(total) >= mailbox_pairs - both) & (people.phone[head] != 0)
    same_surname = rng.random(total) < SAME_SURNAME
    form = rng.choice(len(_FORMS), size=total, p=np.asarray(_FORM_WEIGHTS))

    for column in ("country", "city", "street", "house", "postcode", "domain"):
        values = getattr(people, column)
        values[member] = values[head]
    people.last[member[same_surname]] = people.last[head[same_surname]]
    clash = people.first[member] == people.first[head]
    people.first[member[clash]] = (people.first[member[clash]] + 1) % len(vocab.FIRST_NAMES)
    people.phone[member[shares_phone]] = people.phone[head[shares_phone]]
    people.household[head] = head
    people.household[member] = head

    boxes = np.flatnonzero(shares_mailbox)
    people.mailboxes = _mailbox_addresses(people, head[boxes], member[boxes], form[boxes])
    people.mailbox[head[boxes]] = np.arange(boxes.shape[0])
    people.mailbox[member[boxes]] = np.arange(boxes.shape[0])


def _mailbox_addresses(people: People, head: I64, member: I64, form: I64) -> list[str]:
    """One digit-free address per mailbox household, distinct as email keys (dots ignored)."""
    taken: set[str] = set()
    out = []
    for h, m, k in zip(head.tolist(), member.tolist(), form.tolist(), strict=True):
        names = {
            "f": vocab.FIRST_NAMES[people.first[h]].lower(),
            "g": vocab.FIRST_NAMES[people.first[m]].lower(),
            "l": vocab.LAST_NAMES[people.last[h]].lower(),
        }
        domain = vocab.FREE_DOMAINS[people.domain[h]]
        candidates = [_FORMS[(k + i) % len(_FORMS)] for i in range(len(_FORMS))] + [_FALLBACK]
        local = ""
        for pattern in candidates:
            local = pattern.format(**names)
            if _key(local, domain) not in taken:
                break
        while _key(local, domain) in taken:  # every form taken: a longer family name
            local += "s"
        taken.add(_key(local, domain))
        out.append(f"{local}@{domain}")
    return out


def _key(local: str, domain: str) -> str:
    return f"{local.replace('.', '')}@{domain}"
