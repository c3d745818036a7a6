"""What a raw message names (c360.privacy.documents): the event archive's lifted
``identifiers`` column, which erasure reads instead of the payload."""

from __future__ import annotations

import orjson
import pyarrow as pa

from c360.privacy.documents import lift, payload_identifiers


def _json(message: dict[str, object]) -> str:
    return orjson.dumps(message).decode()


def test_emails_anywhere_and_the_identifier_fields_are_named() -> None:
    message = {
        "type": "track",
        "anonymousId": "c-q",
        "userId": 7,
        "previousId": "c-old",
        "properties": {"recipient": "Alice@X.com", "url": "https://s.com/?to=mailto:bob@y.co.uk"},
        "traits": {"phone": "+31612345678"},
        "context": {"traits": {"phone": " +3220000000 "}},
    }
    assert sorted(payload_identifiers(_json(message))) == [
        ("anonymous_id", "c-old"),
        ("anonymous_id", "c-q"),
        ("customer_id", "7"),
        ("email", "alice@x.com"),
        ("email", "bob@y.co.uk"),
        ("phone", "+31612345678"),
        ("phone", "+3220000000"),
    ]
    zendesk_user = {
        "type": "zen:event-type:user.created",
        "detail": {"id": "z-9", "email": "Eve@Z.com", "phone": "+31 165 183612"},
    }
    assert sorted(payload_identifiers(_json(zendesk_user))) == [
        ("email", "eve@z.com"),
        ("phone", "+31 165 183612"),
        ("phone", "+31165183612"),  # as identity keeps it, so erasure finds it
    ]
    # Not JSON (a quarantined line): its emails still count.
    assert list(payload_identifiers(b"{broken Carol@Z.com")) == [("email", "carol@z.com")]


def test_lift_keeps_what_the_archive_has_no_column_for_and_null_when_nothing() -> None:
    payloads = pa.chunked_array(
        [
            [
                _json({"type": "page", "anonymousId": "c-a", "userId": "1"}),
                _json({"type": "identify", "anonymousId": "c-a", "traits": {"email": "A@X.com"}}),
                _json({"type": "alias", "previousId": "C-Old", "userId": "1"}),
            ],
            [None, "not json, mail dave@g.com and DAVE@g.com"],
        ]
    )
    lifted = lift(payloads)
    assert lifted.type == pa.list_(pa.string())
    assert lifted.to_pylist() == [None, ["a@x.com"], ["c-old"], None, ["dave@g.com"]]
    assert lift(pa.chunked_array([], pa.string())).to_pylist() == []
