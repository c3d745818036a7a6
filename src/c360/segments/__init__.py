"""Segments: audiences defined as boolean expressions over profile fields (domain logic only).

``definition.py`` parses and checks a definition and compiles it to SQL with bound parameters;
the serving store (``c360.stores.segments``) keeps segments and evaluates them, the pipeline's
``segments`` step computes daily membership on the batch engine.
"""

from c360.segments.definition import (
    Compiled,
    Definition,
    DefinitionError,
    Kind,
    compile_sql,
    fields_of,
    kind_of,
    parse,
)

__all__ = [
    "Compiled",
    "Definition",
    "DefinitionError",
    "Kind",
    "compile_sql",
    "fields_of",
    "kind_of",
    "parse",
]
