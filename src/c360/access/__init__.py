"""Access to the Profile API: API keys and their scopes, rate limits — pure logic.

No web framework and no store here: :mod:`c360.access.keys` makes, parses, hashes and checks
keys; :mod:`c360.access.ratelimit` is the token bucket. The store keeps keys
(``ServingStore.add_api_key`` …), the API applies them (``c360.api.auth``).
"""
