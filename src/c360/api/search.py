"""Search: persons by name, email prefix or identifier, paginated with an opaque cursor.

``GET /v1/search?q=…&limit=…&cursor=…`` — what matches and in which order is
:mod:`c360.stores.search`'s docstring; a page is one statement on the serving store. Needs the
``profiles:search`` scope once API keys guard the routes.

A query that is an identifier several persons share (a family mailbox) finds none of them by
it; the answer says so in ``ambiguous_identifiers`` — the identifier's type and how many persons
hold it, never the value — as a lookup by that identifier answers 409 ``ambiguous_identifier``.
Search answers 200 all the same: its results are a list, and the query may still match names
or email prefixes, which a 409 would hide.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from c360.api import cursors
from c360.api.auth import requires
from c360.api.errors import ApiError, responses
from c360.stores import ServingStore
from c360.stores.search import EMAIL, IDENTIFIER_TYPES, MAX_QUERY, NAME, SearchKey

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_CURSOR = "search"
_POSITIONS = {(0, ""), (1, NAME), (1, EMAIL)}  # (rank, kind) a cursor can hold


class SearchResult(BaseModel):
    """A person found: the golden record's main fields and what matched."""

    person_id: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    city: str | None = None
    country: str | None = None
    customer_id: int | None = None
    matched: Literal["identifier", "name", "email"] = Field(
        description="identifier: the query is one of the person's identifiers (or the person "
        "id); name: every query word begins a word of the name; email: the query begins an email"
    )


class AmbiguousMatch(BaseModel):
    """The query, as an identifier of this type, belongs to several persons."""

    id_type: Literal[IDENTIFIER_TYPES] = Field(  # type: ignore[valid-type]
        description="The identifier type under which the query is a shared value."
    )
    persons: int = Field(ge=2, description="How many persons hold it.")


class SearchResults(BaseModel):
    results: list[SearchResult]
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same `q`) for the next page; null on the last."
    )
    ambiguous_identifiers: list[AmbiguousMatch] = Field(
        description="The query is, exactly, an identifier several persons share (a family "
        "mailbox, a household phone): it names none of them, so no result matched it as an "
        "identifier (a lookup by it answers 409 `ambiguous_identifier`). One entry per "
        "identifier type, with how many persons hold it, never the value; the same on every "
        "page; empty when the query is no shared identifier."
    )


def _fingerprint(q: str) -> str:
    """Ties a cursor to its query without carrying the query."""
    return hashlib.md5(q.strip().encode(), usedforsecurity=False).hexdigest()[:8]


def search_router(serving: ServingStore, phone_region: str | None = None) -> APIRouter:
    router = APIRouter(tags=["search"], dependencies=[requires("profiles:search")])

    @router.get("/v1/search", response_model=SearchResults, responses=responses(422))
    def search(
        q: Annotated[
            str,
            Query(
                min_length=1,
                max_length=MAX_QUERY,
                pattern=r"\S",  # not only spaces
                description="A name (word prefixes: `mar`, `anna mü`; case and accents "
                "ignored), an email prefix (`anna.m`), or an identifier (customer id, email, "
                "phone in any written form, anonymous id, Zendesk user id, Mailchimp id) or "
                "person id, matched exactly.",
            ),
        ],
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        cursor: Annotated[
            str | None, Query(max_length=1024, description="`next_cursor` of the previous page")
        ] = None,
    ) -> dict[str, Any]:
        """Persons matching a name, an email prefix or an identifier: exact identifier matches
        first, then by the matched name word or email, then by person id. Keyset-paginated.
        A query that is an identifier several persons share matches none of them by it:
        `ambiguous_identifiers` names its type and how many persons hold it (never the
        value), as the lookup by identifier answers 409 `ambiguous_identifier`."""
        if not q.strip():
            raise ApiError(422, "invalid_request", "q: a name, email prefix or identifier")
        after = None
        if cursor is not None:
            fingerprint, rank, kind, person = cursors.decode(
                "cursor", _CURSOR, cursor, (str, int, str, str)
            )
            if fingerprint != _fingerprint(q) or (rank, kind) not in _POSITIONS:
                raise ApiError(422, "invalid_request", "cursor: it belongs to another query")
            after = SearchKey(rank, kind, person)
        page = serving.search(q, limit, after, phone_region)
        next_cursor = None
        if page.next_key is not None:
            next_cursor = cursors.encode(_CURSOR, _fingerprint(q), *page.next_key)
        return {
            "results": page.rows,
            "next_cursor": next_cursor,
            "ambiguous_identifiers": [shared._asdict() for shared in page.ambiguous],
        }

    return router
