"""Profile reads: by person id, or by any identifier the identity map knows.

The hot path of the website: each request is one store read (:meth:`ServingStore.profile`,
one statement through the driver) and one orjson serialisation; the answer is not
re-validated against its model (the store builds it; the model documents it in OpenAPI).
The read runs on the event loop, no thread hop (a third of the throughput, measured). On
SQLite it is a call into the driver, a fraction of a millisecond. On PostgreSQL
``api.profile_reads`` chooses: ``inline`` (the default), the driver's blocking call, which
holds the loop for the round trip but costs half the CPU of an async one (asyncio's waits on
the socket: 0.39 of the floor against 0.27, measured on one host with 2 workers); or
``async``, the driver's async connections (:meth:`ServingStore.aprofile_and_consent`), which
leave the loop free meanwhile, for a store whose round trips are long. Either way the server
cancels a read's statement after 5 s (``stores/postgres.py`` ``READ_STATEMENT_TIMEOUT_MS``), a
503 to retry, so a slow statement holds the loop for 5 s at most (a lost network is not
bounded by it: TCP's own timeouts are).

``fields=a,b`` narrows the answer to those fields of the unified ``profile`` (the website reads
a few); ``explain=true`` adds ``provenance`` — which layer served each field and as of when —
and the two layers as they are (``batch``, ``realtime``). Without it they are left out: the
merged ``profile`` holds what a caller uses of them, and they were two thirds of the bytes.

**An identifier several persons share** (a family mailbox, a household phone) is in no
person's identity map: identity lists it apart (``ambiguous_identifier``), and a lookup by it is
a 409 ``ambiguous_identifier`` naming the identifier's type and how many persons hold it — never
the value — where an identifier no one holds is a 404 (a search by it gives the same facts in
its ``ambiguous_identifiers``: :mod:`.search`). The store asks only after the identity
map found no one, so a found person's read costs nothing more.

**Consent** (:mod:`c360.access.consent`): the same statement reads the person's newest consent
decision since the batch; the answer's ``marketing_consent*`` fields are
the newest of the batch's and that one, and a person without consent has their marketing
fields answered as null unless the key has ``profiles:service``. **Audit**: each answered read
is recorded (key id, person, route template) in the read audit's buffer (:mod:`.audit`).
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from fastapi import APIRouter, Request

from c360.access import consent
from c360.access.keys import PROFILES_SERVICE
from c360.api.audit import ReadAudit
from c360.api.auth import GuardedRoute, request_key, requires
from c360.api.errors import ApiError, ErrorBody, responses
from c360.api.json import JSON
from c360.api.openapi import comma_separated
from c360.api.schema import PROFILE_FIELDS, Profile
from c360.contracts.times import utc
from c360.identity.normalise import normalise
from c360.stores import Ambiguous, ServingStore

ID_TYPES = ("customer_id", "email", "anonymous_id", "zendesk_user_id", "mailchimp_id", "phone")

# The routes read their parameters themselves (FastAPI's per-request parameter machinery cost
# more than the store read on this path); OpenAPI gets them declared here instead.
_QUERY = [
    comma_separated(
        "fields",
        PROFILE_FIELDS,
        "Comma-separated fields of the unified profile to answer with (the others, and the "
        "batch and realtime sections, are left out).",
        example=["total_lifetime_spend", "cart_value", "open_support_tickets"],
    ),
    {
        "name": "explain",
        "in": "query",
        "required": False,
        "schema": {"type": "boolean", "default": False},
        "description": "Add `provenance` (which layer served each field, and as of when) and "
        "the two layers as they are (`batch`, `realtime`).",
    },
]
_BY_ID = [{"name": "person_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_BY_IDENTIFIER = [
    {
        "name": "id_type",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": list(ID_TYPES)},
    },
    {"name": "id_value", "in": "path", "required": True, "schema": {"type": "string"}},
]
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": Profile, "description": "The person's unified profile."},
    **responses(404, 422, 500, 503),
}
_ANSWERS_BY_IDENTIFIER: dict[int | str, dict[str, Any]] = {
    **_ANSWERS,
    409: {
        "model": ErrorBody,
        "description": "`ambiguous_identifier`: the identifier belongs to several persons (a "
        "shared mailbox, a household phone), so it names none of them; look the person up by "
        "person id or another identifier.",
    },
}


def _explain(query: Mapping[str, str]) -> bool:
    value = query.get("explain")
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise ApiError(422, "invalid_request", "explain: expected true or false")


def _projection(fields: str | None) -> list[str] | None:
    if fields is None:
        return None
    names = fields.split(",")
    for name in names:
        if name not in PROFILE_FIELDS:
            near = difflib.get_close_matches(name, PROFILE_FIELDS, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            # the name is not echoed (an error body carries no personal data); the hint is a field
            raise ApiError(422, "unknown_field", f"fields: not a profile field{hint}")
    return names


def _narrowed(found: dict[str, Any], names: list[str]) -> dict[str, Any]:
    profile = found["profile"]
    answer = {
        "person_id": found["person_id"],
        "redirected_from": found["redirected_from"],
        "profile": {name: profile.get(name) for name in names},
    }
    if "provenance" in found:
        provenance = found["provenance"]
        answer["provenance"] = {name: provenance[name] for name in names if name in provenance}
    return answer


Read = tuple[dict[str, Any], consent.Decision | None]  # a profile and its consent since the batch

_CONSENT_FIELDS = ("marketing_consent", "marketing_consent_source", "marketing_consent_at")


def with_consent(
    found: dict[str, Any], since: consent.Decision | None, service: bool
) -> dict[str, Any]:
    """The answer with its consent as the newest decision (the batch's or ``since``) and, for a
    person without consent read without ``service`` use, its marketing fields null."""
    profile = found["profile"]
    batch = consent.batch_decision(
        profile.get("marketing_consent"),
        profile.get("marketing_consent_at"),
        profile.get("marketing_consent_source"),
    )
    winner = consent.newest([batch, since])
    if winner is not None and winner is since:
        values = (winner.consent, winner.source, utc(winner.decided_at))
        profile.update(zip(_CONSENT_FIELDS, values, strict=True))
        if "provenance" in found:
            for name in _CONSENT_FIELDS:
                found["provenance"][name] = {"layer": "realtime", "as_of": values[2]}
    if service or (winner is not None and winner.consent):
        return found
    consent.redact(profile)
    if "batch" in found:
        consent.redact(found["batch"])
    return found


def profiles_router(
    serving: ServingStore,
    phone_region: str | None = None,
    audit: ReadAudit | None = None,
    reads: Literal["inline", "async"] = "inline",
) -> APIRouter:
    """The profile routes over ``serving``, whose reads run as ``reads`` says
    (``api.profile_reads``; a store without async reads runs them inline)."""
    router = APIRouter(
        tags=["profiles"], dependencies=[requires("profiles:read")], route_class=GuardedRoute
    )
    reads_async = reads == "async" and serving.reads_async

    async def read_profile(person_id: str, explain: bool) -> Read | None:
        if reads_async:
            return await serving.aprofile_and_consent(person_id, explain=explain)
        return serving.profile_and_consent(person_id, explain=explain)

    async def read_by_identifier(
        id_type: str, value: str, explain: bool
    ) -> Read | Ambiguous | None:
        if reads_async:
            return await serving.aprofile_by_identifier(id_type, value, explain=explain)
        return serving.profile_by_identifier(id_type, value, explain=explain)

    async def answer(
        request: Request,
        read: Callable[[bool], Awaitable[Read | Ambiguous | None]],
        not_found: str,
    ) -> JSON:
        """The answer to a profile route with what ``read(explain)`` found."""
        # most reads have no query: its parsing is skipped (a few per cent of a read's CPU)
        query: Mapping[str, str] = request.query_params if request.scope["query_string"] else {}
        names = _projection(query.get("fields"))
        explain = _explain(query)
        read_now = await read(explain)
        if read_now is None:
            raise ApiError(404, "not_found", not_found)
        if isinstance(read_now, Ambiguous):  # the type and a count: never the value asked for
            raise ApiError(
                409,
                "ambiguous_identifier",
                f"that {read_now.id_type} belongs to {read_now.persons} persons; look the "
                "person up by person id or another identifier",
            )
        key = request_key(request)
        found = read_now[0]
        if not explain:  # the layers are diagnostics: a page view's answer is a third as long
            del found["batch"], found["realtime"]
        found = with_consent(found, read_now[1], service=key.allows(PROFILES_SERVICE))
        if audit is not None:
            audit.record(key.key_id, found["person_id"], request.scope["route"].path)
        headers = {}
        if found["redirected_from"] is not None:
            headers["Content-Location"] = f"/v1/profiles/{found['person_id']}"
        body = found if names is None else _narrowed(found, names)
        return JSON(body, headers=headers)

    @router.get(
        "/v1/profiles/{person_id}",
        response_class=JSON,
        response_model=None,
        responses=_ANSWERS,
        openapi_extra={"parameters": [*_BY_ID, *_QUERY]},
    )
    async def profile(request: Request) -> JSON:
        """A person's profile. A retired id (merged into another person) answers with the
        survivor's profile, ``redirected_from`` set and ``Content-Location`` naming the
        survivor's URL, so a client can update the id it stores."""
        person_id = request.path_params["person_id"]
        return await answer(
            request, lambda explain: read_profile(person_id, explain), "no person with that id"
        )

    @router.get(
        "/v1/profiles/by/{id_type}/{id_value:path}",
        response_class=JSON,
        response_model=None,
        responses=_ANSWERS_BY_IDENTIFIER,
        openapi_extra={"parameters": [*_BY_IDENTIFIER, *_QUERY]},
    )
    async def profile_by_identifier(request: Request) -> JSON:
        """The profile of the person an identifier belongs to (in any written form: emails are
        compared lower-cased, phones in E.164 — a national number is read in
        ``identity.default_phone_region``). The value may contain ``/``. An identifier that
        several persons share (identity keeps it out of the identity map) is a 409
        ``ambiguous_identifier``, an unknown one a 404."""
        id_type, raw = request.path_params["id_type"], request.path_params["id_value"]
        if id_type not in ID_TYPES:
            raise ApiError(422, "invalid_request", f"id_type: one of {', '.join(ID_TYPES)}")
        value = normalise(id_type, raw, phone_region)
        return await answer(
            request,
            lambda explain: read_by_identifier(id_type, value, explain),
            f"no person with that {id_type}",
        )

    return router
