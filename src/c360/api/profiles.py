"""Profile reads: by person id, or by any identifier the identity map knows."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response

from c360.api.auth import requires
from c360.api.errors import ApiError, responses
from c360.api.schema import Profile
from c360.identity.normalise import normalise
from c360.stores import ServingStore

IdType = Literal["customer_id", "email", "anonymous_id", "zendesk_user_id", "mailchimp_id", "phone"]


def profiles_router(serving: ServingStore) -> APIRouter:
    router = APIRouter(tags=["profiles"], dependencies=[requires("profiles:read")])

    @router.get("/v1/profiles/{person_id}", response_model=Profile, responses=responses(404))
    def profile(person_id: str, response: Response) -> dict[str, Any]:
        """A person's profile. A retired id (merged into another person) answers with the
        survivor's profile, ``redirected_from`` set and ``Content-Location`` naming the
        survivor's URL, so a client can update the id it stores."""
        found = serving.profile(person_id)
        if found is None:
            raise ApiError(404, "not_found", "no person with that id")
        if found["redirected_from"] is not None:
            response.headers["Content-Location"] = f"/v1/profiles/{found['person_id']}"
        return found

    @router.get(
        "/v1/profiles/by/{id_type}/{id_value}", response_model=Profile, responses=responses(404)
    )
    def profile_by_identifier(id_type: IdType, id_value: str, response: Response) -> dict[str, Any]:
        """The profile of the person an identifier belongs to (in any written form: emails are
        compared lower-cased, phones in E.164)."""
        person_id = serving.find_person(id_type, normalise(id_type, id_value))
        if person_id is None:
            raise ApiError(404, "not_found", f"no person with that {id_type}")
        return profile(person_id, response)

    return router
