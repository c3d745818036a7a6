"""The one error hierarchy of c360.

Every error c360 raises on purpose derives from :class:`C360Error`. Errors are classified once,
where they happen, as *transient* (worth retrying with backoff) or *terminal* (retrying cannot
help: fix the input or the configuration). Messages name what to fix.
"""

from __future__ import annotations

import errno
import traceback


class C360Error(Exception):
    """Root of every error c360 raises on purpose."""

    exit_code = 1


class TerminalError(C360Error):
    """Retrying cannot help: the input, the data or the setup must change."""


class TransientError(C360Error):
    """A passing failure (network, lock, busy service): retry with backoff.

    ``retry_after`` is the delay the other side asked for (an HTTP ``Retry-After``), in
    seconds, when it said; :mod:`c360.retry` waits that long instead of its own backoff.
    """

    def __init__(self, *args: object, retry_after: float | None = None) -> None:
        super().__init__(*args)
        self.retry_after = retry_after


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


# OS error numbers that retrying cannot fix, with what to do about them.
_TERMINAL_ERRNOS: dict[int, str] = {
    errno.EACCES: "give this process access, or change {key}",
    errno.EPERM: "give this process access, or change {key}",
    errno.EROFS: "point {key} at a writable location",
    errno.ENOSPC: "free space, or point {key} at a larger volume",
    errno.EDQUOT: "free space or raise the quota, or point {key} elsewhere",
    errno.ENOENT: "check {key} (a missing folder or bucket?)",
    errno.ENOTDIR: "check {key}: a part of the path is a file",
    errno.EISDIR: "check {key}: a folder stands where a file should",
    errno.ENAMETOOLONG: "shorten {key}",
}


def classify_os_error(error: OSError, what: str, key: str) -> TerminalError | TransientError:
    """An ``OSError`` of a file system (local or fsspec) as terminal or transient.

    Terminal: permission denied, a read-only file system, a full disk or quota, a missing
    folder or bucket, a wrong path; the message names ``key``, the setting to change.
    Transient: the rest (an I/O error, a timeout, a dropped connection, a busy resource), which
    a later try may not meet. ``what`` says what was being done, to which path.
    """
    reason = error.strerror or str(error) or type(error).__name__
    hint = _TERMINAL_ERRNOS.get(error.errno or 0)
    if isinstance(error, PermissionError):  # fsspec's often come without an errno
        hint = _TERMINAL_ERRNOS[errno.EACCES]
    elif isinstance(error, FileNotFoundError):
        hint = _TERMINAL_ERRNOS[errno.ENOENT]
    elif isinstance(error, ConnectionError | TimeoutError):
        hint = None
    if hint is None:
        return TransientError(f"{what}: {reason}; retry later")
    return TerminalError(f"{what}: {reason}; {hint.format(key=key)}")


def raised_at(error: BaseException) -> str:
    """Where ``error`` was raised (``file:line``): for a log line about an unclassified error,
    whose message might quote data and so is not logged."""
    frames = traceback.extract_tb(error.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "an unknown place"
