"""The Profile API: unified profiles by person id or by any identifier."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, HTTPException

from c360 import __version__
from c360.config import Settings
from c360.identity.normalise import normalise
from c360.stores import ServingStore, open_store
from c360.stores.profiles import find_person, get_profile

IdType = Literal["customer_id", "email", "anonymous_id", "zendesk_user_id", "mailchimp_id", "phone"]


def create_app(settings: Settings, store: ServingStore | None = None) -> FastAPI:
    """The API over the configured serving store (or a given one, e.g. in tests)."""
    owned = store is None
    serving = store or open_store(settings.serving.url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        serving.migrate()
        yield
        if owned:
            serving.dispose()

    app = FastAPI(title="c360 Profile API", version=__version__, lifespan=lifespan)

    @app.get("/health")
    def health() -> dict[str, Any]:
        published = serving.query(
            "SELECT batch_date, published_at FROM batch_publish ORDER BY id DESC LIMIT 1"
        )
        return {"status": "ok", "batch": published[0] if published else None}

    @app.get("/v1/profiles/{person_id}")
    def profile(person_id: str) -> dict[str, Any]:
        found = get_profile(serving, person_id)
        if found is None:
            raise HTTPException(404, f"no person {person_id!r}")
        return found

    @app.get("/v1/profiles/by/{id_type}/{id_value}")
    def profile_by_identifier(id_type: IdType, id_value: str) -> dict[str, Any]:
        person_id = find_person(serving, id_type, normalise(id_type, id_value))
        if person_id is None:
            raise HTTPException(404, f"no person with that {id_type}")
        return profile(person_id)

    return app
