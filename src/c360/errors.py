"""The one error hierarchy of c360.

Every error c360 raises on purpose derives from :class:`C360Error`. Errors are classified once,
where they happen, as *transient* (worth retrying with backoff) or *terminal* (retrying cannot
help: fix the input or the configuration). Messages name what to fix.
"""

from __future__ import annotations


class C360Error(Exception):
    """Root of every error c360 raises on purpose."""

    exit_code = 1


class TerminalError(C360Error):
    """Retrying cannot help: the input, the data or the setup must change."""


class TransientError(C360Error):
    """A passing failure (network, lock, busy service): retry with backoff."""


class ConfigError(TerminalError):
    """The configuration is invalid: names the key, the accepted values and the fix."""

    exit_code = 2

    def __init__(self, key: str, problem: str, *, source: str | None = None) -> None:
        self.key = key
        self.problem = problem
        self.source = source
        where = f" (set in {source})" if source else ""
        super().__init__(f"config {key}{where}: {problem}")


class MissingDependencyError(TerminalError):
    """An optional backend was asked for but its extra is not installed."""

    exit_code = 2

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(f"{feature} needs the '{package}' package: pip install 'c360[{extra}]'")


class DataError(TerminalError):
    """Input data breaks a contract (schema, type, referential integrity)."""


class GiantClusterError(TerminalError):
    """Identity resolution put a suspicious share of all records into one person."""

    def __init__(self, cluster_key: str, size: int, records: int, share: float) -> None:
        self.cluster_key = cluster_key
        self.size = size
        self.records = records
        self.share = share
        super().__init__(
            f"identity: cluster {cluster_key!r} holds {size:,} of {records:,} records "
            f"({size / records:.1%}), more than identity.giant_cluster_share = {share:g}. "
            "A shared identifier or a few false links are merging strangers: look at the "
            "cluster's identifiers, add a placeholder value to identity.blocked_values, or "
            "lower identity.max_customers_per_identifier or identity.max_cluster_records; "
            "raise identity.giant_cluster_share only if this really is one customer"
        )


class NotFoundError(C360Error):
    """A looked-up entity (person, identifier, partition) does not exist."""
