"""The suppression list: keyed hashes, and which raw rows it drops (what "comes back" means)."""

from __future__ import annotations

import pyarrow as pa

from c360.privacy import Subject, SuppressionList, identifier_hash
from c360.privacy.identifiers import PERSON, identifier_hashes

SALT = b"k" * 32


def _erased() -> SuppressionList:
    subject = Subject()
    subject.add_all(
        [("customer_id", 1), ("email", " Ann@X.com "), ("anonymous_id", "ck-1"), ("order_id", 7)]
    )
    return SuppressionList(SALT, frozenset(h["hash"] for h in subject.hashes(SALT)))


def test_hashes_are_keyed_and_of_the_lookup_form() -> None:
    assert identifier_hash(SALT, "email", "ANN@x.com ") == identifier_hash(
        SALT, "email", "ann@x.com"
    )
    assert identifier_hash(SALT, "email", "ann@x.com") != identifier_hash(
        b"other", "email", "ann@x.com"
    )
    assert identifier_hash(SALT, "email", "1") != identifier_hash(SALT, "customer_id", "1")
    erased = _erased()
    assert erased.suppressed("email", "ann@X.COM") and not erased.suppressed("email", "bo@y.com")
    assert not SuppressionList(SALT, frozenset()).any_suppressed([("email", "ann@x.com")])


def test_a_new_account_comes_back_and_nothing_else_does() -> None:
    orders = pa.record_batch(
        {
            "order_id": [7, 8, 9, 10],
            "customer_id": pa.array([1, None, 99, 2], pa.int64()),
            "email": ["ann@x.com", "ANN@x.com", "ann@x.com", "bo@y.com"],
        }
    )
    kept, dropped = _erased().filter_raw("shop", "orders", orders)
    # order 7 (erased id), 8 (a guest order under the erased email) go; 9 is a new account's
    assert kept.column("order_id").to_pylist() == [9, 10] and dropped == 2
    members = pa.record_batch({"email_address": ["ann@x.com", "bo@y.com"], "euid": ["a", "b"]})
    kept, dropped = _erased().filter_raw("mailchimp", "members", members)
    assert kept.column("email_address").to_pylist() == ["bo@y.com"] and dropped == 1
    items = pa.record_batch({"order_item_id": [1, 2], "order_id": [7, 9]})
    assert _erased().filter_raw("shop", "order_items", items)[0].num_rows == 1
    unknown = pa.record_batch({"email": ["ann@x.com"]})
    assert _erased().filter_raw("shop", "products", unknown) == (unknown, 0)
    clicks = pa.record_batch({"anonymous_id": ["ck-1", "ck-2"], "user_id": [None, "1"]})
    assert _erased().filter_raw("events", "clickstream", clicks)[1] == 2


def test_many_hashes_at_once_are_identifier_hashes() -> None:
    persons = [f"p_{i:016x}" for i in range(100)] + [" p_padded "]
    assert list(identifier_hashes(SALT, PERSON, persons)) == [
        identifier_hash(SALT, PERSON, p) for p in persons
    ]
    assert list(identifier_hashes(SALT, "email", ["Ann@X.com "])) == [
        identifier_hash(SALT, "email", "ann@x.com")
    ]
