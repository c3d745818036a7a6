"""Why an event was refused or dead-lettered, as one of a few fixed codes.

An invalid event carries two things: its *reason*, the text a person reads in the collector's
answer and in ``dead_letter.reason`` (it names the field and what is wrong, and may quote part
of the event), and its *code*, one of :data:`CODES`, for counting — a metric label, ``c360
status``'s breakdown of the dead letters. A code is never free text and never a value from the
event, so the labels stay few and free of personal data.
"""

from __future__ import annotations

from typing import Final

NOT_JSON: Final = "not_json"  # the bytes are not JSON
NOT_OBJECT: Final = "not_object"  # JSON, but not an object
UNKNOWN_TYPE: Final = "unknown_type"  # no event type, or one the contract does not know
MISSING_FIELD: Final = "missing_field"  # a required field absent or empty (an id, the event name)
INVALID_FIELD: Final = "invalid_field"  # a field of the wrong type, length or form
FUTURE_TIME: Final = "future_time"  # event time after its receive time plus the allowed skew
IMPLAUSIBLE_MONEY: Final = "implausible_money"  # an amount that is not a plausible sum of money
OTHER: Final = "other"  # dead letters stored before the codes existed

CODES: Final = (
    NOT_JSON,
    NOT_OBJECT,
    UNKNOWN_TYPE,
    MISSING_FIELD,
    INVALID_FIELD,
    FUTURE_TIME,
    IMPLAUSIBLE_MONEY,
    OTHER,
)
