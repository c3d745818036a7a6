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


class NotFoundError(C360Error):
    """A looked-up entity (person, identifier, partition) does not exist."""
