"""Privacy: what erasure resolves and matches, suppression of erased identifiers (issue 18).

Domain code only: which identifiers a person has (:class:`Subject`), their keyed hashes (the
receipt's and the suppression list's only trace of them), how rows of the lake and the event
log are matched. The serving store's side (its registry of personal tables and the deletes) is
:mod:`c360.stores.erasure`; the composition over store, lake and log is
:mod:`c360.pipeline.erasure`.
"""

from c360.privacy.identifiers import ID_TYPES, Subject, identifier_hash
from c360.privacy.suppression import SuppressionCache, SuppressionList

__all__ = ["ID_TYPES", "Subject", "SuppressionCache", "SuppressionList", "identifier_hash"]
