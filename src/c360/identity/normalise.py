"""Identifier normalisation, the Python side of what the identity SQL does (lower(trim()))."""

from __future__ import annotations


def normalise(id_type: str, value: str) -> str:
    if id_type == "email":
        return value.strip().lower()
    return value.strip()
