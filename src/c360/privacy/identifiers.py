"""A person's identifiers, as erasure resolves them, and their keyed hashes."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from c360.identity.normalise import normalise

# identity_map's identifier types, plus the two erasure adds: the person ids (live and retired)
# and the order ids of the person's orders (order lines carry nothing else of theirs).
ID_TYPES = ("customer_id", "email", "anonymous_id", "zendesk_user_id", "mailchimp_id", "phone")
PERSON = "person_id"
ORDER = "order_id"


def identifier_hash(salt: bytes, id_type: str, value: str) -> str:
    """HMAC-SHA256 (keyed by the store's erasure salt) of an identifier in lookup form, hex:
    what the receipt and the suppression list keep instead of the value."""
    return next(identifier_hashes(salt, id_type, (value,)))


def identifier_hashes(salt: bytes, id_type: str, values: Iterable[str]) -> Iterator[str]:
    """:func:`identifier_hash` of each value, in order, the key's HMAC state made once (each
    hash then copies it: two-thirds of the time, for the read audit's thousands a flush)."""
    keyed = hmac.new(salt, digestmod=hashlib.sha256)
    for value in values:
        mac = keyed.copy()
        mac.update(f"{id_type}:{normalise(id_type, value)}".encode())
        yield mac.hexdigest()


@dataclass
class Subject:
    """Everything erasure removes for one person: identifier values by type (lookup form)."""

    values: dict[str, set[str]] = field(default_factory=dict)

    def add(self, id_type: str, value: object) -> None:
        if value is None:
            return
        text = normalise(id_type, str(value)) if id_type in ID_TYPES else str(value).strip()
        if text:
            self.values.setdefault(id_type, set()).add(text)

    def add_all(self, pairs: Iterable[tuple[str, object]]) -> None:
        for id_type, value in pairs:
            self.add(id_type, value)

    def of(self, *id_types: str) -> list[str]:
        """The values of these types, sorted (for stable SQL parameters)."""
        return sorted({v for t in id_types for v in self.values.get(t, ())})

    def pairs(self, *id_types: str) -> Iterator[tuple[str, str]]:
        for id_type in id_types or tuple(self.values):
            for value in sorted(self.values.get(id_type, ())):
                yield id_type, value

    @property
    def persons(self) -> list[str]:
        return self.of(PERSON)

    def strong_tokens(self) -> list[str]:
        """Values distinctive enough to find as substrings of a document (a JSON payload, a
        quarantined record): emails, cookies, phones, Mailchimp ids, person ids — not the
        short numeric customer, order or Zendesk ids, which would match other numbers."""
        kinds = ("email", "anonymous_id", "phone", "mailchimp_id", PERSON)
        return [v for v in self.of(*kinds) if len(v) >= 6]

    def hashes(self, salt: bytes) -> list[dict[str, str]]:
        """The receipt's identifiers: type and keyed hash, never the value."""
        return [
            {"type": id_type, "hash": identifier_hash(salt, id_type, value)}
            for id_type, value in self.pairs()
        ]

    def __bool__(self) -> bool:
        return any(self.values.values())
