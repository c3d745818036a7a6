"""The OpenAPI document is a truthful contract: a schema-driven fuzz run finds nothing.

Schemathesis reads ``/openapi.json`` from the real server (uvicorn on loopback, a small
published store, a local event log), generates requests for every operation — valid ones and
invalid ones — and runs **all** its checks on every answer: no 5xx, no status the operation does
not document, every body and header as documented, valid requests accepted and invalid ones
rejected (``call_and_validate`` with no ``checks``: every check schemathesis has, in its coverage
phase of boundary and missing-part probes and in its fuzzing phase). It is bounded —
:data:`EXAMPLES` generated requests per operation, derandomized so CI repeats the same run,
about 20 s in all — and sends nothing beyond loopback.

Credentials: the collector gets its write key (HTTP Basic), the Zendesk webhook a real signature
over the exact bytes sent (:class:`ZendeskSigner`), the Profile API whatever
:func:`profile_api_headers` returns (an API key).

Rules of the contract no JSON Schema can state, written in the descriptions: an event time (or
a consent's ``decided_at``) may not lie after the receive time plus
``events.max_clock_skew_seconds``, nor outside years 1-9999
once converted to UTC (``0001-01-01T00:00:00+01:00``). Generated event times are dates of any
year with any offset, so :func:`_in_the_past` sets such ones in 2000 before they are sent (both
are documented 400s, tested in ``test_collector.py``, ``test_zendesk_webhook.py`` and the
decoder tests).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import hypothesis
import pyarrow as pa
import pytest
import requests
import schemathesis

from c360.access.keys import generate
from c360.api import cursors
from c360.api.app import create_app
from c360.api.errors import ApiError
from c360.api.server import serve_in_thread
from c360.batch import catalogue
from c360.config import Settings
from c360.contracts.zendesk import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from c360.segments import DefinitionError, fields_of, parse
from c360.segments.definition import MAX_LENGTH as MAX_DEFINITION
from c360.stores import ServingStore, open_store
from c360.stores.segments import REALTIME_FIELDS as REALTIME_SEGMENT_FIELDS

EXAMPLES = 50  # per operation: ~20 s for the whole run on 2 cores
WRITE_KEY = "wk_contract"
SECRET = "contract-test-secret"
COLLECTOR = re.compile(r"/v1/(track|page|screen|identify|alias|group|batch)$")
WEBHOOK = "/v1/webhooks/zendesk"
MAILCHIMP = "/v1/webhooks/mailchimp"


class ZendeskSigner(requests.auth.AuthBase):
    """Signs every webhook request as Zendesk does, now, over the body bytes as sent (the
    headers are not in the document: a signature is no parameter a client chooses)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        data = body.encode() if isinstance(body, str) else body
        timestamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        request.headers[TIMESTAMP_HEADER] = timestamp
        request.headers[SIGNATURE_HEADER] = sign(SECRET, timestamp, data)
        return request


def publish(store: ServingStore) -> None:
    store.publish_batch(
        dt.date(2025, 6, 10),
        {
            "person": pa.table({"person_id": ["p_1"], "email": ["a@x.com"]}),
            "identity_map": pa.table(
                {
                    "id_type": ["customer_id", "email"],
                    "id_value": ["42", "a@x.com"],
                    "person_id": ["p_1", "p_1"],
                }
            ),
            "batch_profile": pa.table(
                {
                    "person_id": ["p_1"],
                    "total_lifetime_spend": [12.5],
                    "number_of_orders": pa.array([1], pa.int64()),
                }
            ),
        },
    )


def profile_api_headers(store: ServingStore) -> dict[str, str]:
    """The headers that authorise the Profile API's reads: a key with every scope, whose rate
    limit the fuzz run stays under (schemathesis also checks that a request without them is
    refused as documented)."""
    key = generate(["admin"], name="contract", rate_limit_per_s=1_000_000)
    store.add_api_key(key.record)
    return {"Authorization": f"Bearer {key.key}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("contract")
    settings = Settings.model_validate(
        {
            "log": {"url": f"local://{root}/log", "partitions": 2},
            "serving": {"url": f"sqlite:///{root}/serving.db"},
            "collector": {"write_keys": [WRITE_KEY]},
            "sources": {
                "zendesk": {"webhook_secret": SECRET},
                "mailchimp": {"webhook_secret": SECRET},
            },
        }
    )
    store = open_store(settings.serving.url)
    store.migrate()
    publish(store)
    try:
        with serve_in_thread(create_app(settings, store=store)) as url:
            yield url, profile_api_headers(store)
    finally:
        store.dispose()


def _document() -> dict[str, Any]:
    """The OpenAPI document the server serves (the test asserts it is the one served)."""
    settings = Settings.model_validate({"serving": {"url": "sqlite:///:memory:"}})
    return create_app(settings).openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def _in_the_past(context: Any, body: Any) -> Any:
    """``map_body``: event times after now (or beyond the calendar in UTC) set in 2000."""
    return _past(body)


schema.hook("map_body")(_in_the_past)


def _only_real_cursors(case: schemathesis.Case) -> None:
    """Pagination cursors are opaque, only a previous page makes one; a made-up
    one is a 422 by design (``test_profile_reads``), which the fuzzer cannot know. So a
    generated ``cursor`` or ``before`` that is not a cursor (nor, for ``before``, a time) is
    left out and the rest of the request kept."""
    if not isinstance(case.query, dict):
        return
    for name in ("cursor", "before"):
        value = case.query.get(name)
        if isinstance(value, str) and len(value) <= 1024 and not _could_be_real(name, value):
            del case.query[name]


# The fields the fuzz run's store offers: the catalogue's and the real-time features.
_SEGMENT_FIELDS = {
    **fields_of(catalogue.schema()),
    **{name: kind for name, (kind, _) in REALTIME_SEGMENT_FIELDS.items()},
}


def _only_real_definitions(case: schemathesis.Case) -> None:
    """A segment definition is a language no JSON Schema states: a generated string that is
    not a definition is a 422 by design (``test_segment_definitions``, ``test_api_segments``),
    so it is replaced by one that is, and the rest of the request kept. One the schema refuses
    (empty, too long) is left as it is."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("definition"), str):
        if not 1 <= len(body["definition"]) <= MAX_DEFINITION:
            return
        try:
            parse(case.body["definition"], _SEGMENT_FIELDS)
        except DefinitionError:
            case.body["definition"] = "total_lifetime_spend > 0"


def _mailchimp_secret(case: schemathesis.Case) -> None:
    """The Mailchimp webhook's URL carries its secret (a made-up one is a documented 401): a
    generated one that is a string is replaced by the configured one, so the form is read."""
    query = case.query
    if case.path == MAILCHIMP and isinstance(query, dict) and isinstance(query.get("secret"), str):
        query["secret"] = SECRET


def _could_be_real(name: str, value: str) -> bool:
    if name == "before":
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return True
        except ValueError:
            pass
    route, types = _CURSORS[name]
    try:
        cursors.decode(name, route, value, types)
        return True
    except ApiError:
        return False


_CURSORS: dict[str, tuple[str, tuple[type, ...]]] = {
    "cursor": ("search", (str, int, str, str)),
    "before": ("timeline", (int, str)),
}


def _past(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _fix_time(v) if k in ("timestamp", "time", "decided_at", "fired_at") else _past(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_past(v) for v in value]
    return value


def _fix_time(value: Any) -> Any:
    """A date-time after now, or outside the calendar once in UTC, as one in 2000."""
    if not isinstance(value, str):
        return value
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return value
    try:
        aware = parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    except OverflowError:
        return "2000-01-01T00:00:00Z"
    return value if aware <= dt.datetime.now(dt.UTC) else "2000-01-01T00:00:00Z"


def _session(path: str, headers: dict[str, str]) -> requests.Session:
    session = requests.Session()
    if COLLECTOR.search(path):
        session.auth = (WRITE_KEY, "")
    elif path == WEBHOOK:
        session.auth = ZendeskSigner()
    else:
        session.headers.update(headers)
    return session


@pytest.mark.timeout(180)
@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
)
def test_every_operation_keeps_its_contract(
    case: schemathesis.Case, server: tuple[str, dict[str, str]]
) -> None:
    url, headers = server
    _only_real_cursors(case)
    _only_real_definitions(case)
    _mailchimp_secret(case)
    with _session(case.path, headers) as session:
        case.call_and_validate(base_url=url, session=session, timeout=10)


def test_the_fuzzed_document_is_the_one_served(server: tuple[str, dict[str, str]]) -> None:
    url, _ = server
    assert requests.get(f"{url}/openapi.json", timeout=10).json() == DOCUMENT


def test_the_contract_documents_every_status() -> None:
    """Every route lists what it answers; FastAPI's 422 is documented in the shape answered."""
    document = DOCUMENT
    statuses = {
        f"{method.upper()} {path}": sorted(op["responses"])
        for path, operations in document["paths"].items()
        for method, op in operations.items()
    }
    ingest = ["200", "400", "401", "500", "503"]
    for path in ("track", "page", "screen", "identify", "alias", "group", "batch"):
        assert statuses[f"POST /v1/{path}"] == ingest
    assert statuses["POST /v1/webhooks/zendesk"] == ingest
    assert {"200", "404", "422"} <= set(statuses["GET /v1/profiles/{person_id}"])
    assert "HTTPValidationError" not in document["components"]["schemas"]
    body = document["paths"]["/v1/track"]["post"]["requestBody"]["content"]["application/json"]
    assert {"event", "anonymousId", "timestamp"} <= set(body["schema"]["properties"])
