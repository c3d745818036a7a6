"""File sources: a file that cannot be opened is a classified error naming its setting."""

from __future__ import annotations

import datetime as dt
import errno
import gzip
from pathlib import Path

import pytest

from c360.config import ZendeskSourceSettings
from c360.errors import DataError, TerminalError, TransientError
from c360.ingest.zendesk import ingest_zendesk
from c360.lake import Lake
from c360.sources.files import open_bytes


def test_plain_and_gzip_files_read_alike(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"{}\n")
    (tmp_path / "b.jsonl").write_bytes(gzip.compress(b"{}\n"))
    for name in ("a.jsonl", "b.jsonl"):
        with open_bytes(tmp_path / name, "sources.x.path") as stream:
            assert stream.read() == b"{}\n"


def test_a_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"not found: .*nope\.jsonl \(set sources\.x\.path\)"):
        open_bytes(tmp_path / "nope.jsonl", "sources.x.path")
    with pytest.raises(FileNotFoundError):  # without a setting to name: as it is
        open_bytes(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), TerminalError),
        (OSError(errno.EIO, "Input/output error"), TransientError),
    ],
)
def test_other_failures_are_classified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, kind: type[Exception]
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"{}\n")

    def refused(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(Path, "open", refused)
    with pytest.raises(kind, match=r"events\.jsonl"):
        open_bytes(path, "sources.x.path")


def test_zendesk_ingest_without_its_file_names_the_setting(tmp_path: Path) -> None:
    settings = ZendeskSourceSettings(path=str(tmp_path / "missing.jsonl"))
    with pytest.raises(DataError, match=r"sources\.zendesk\.path"):
        ingest_zendesk(settings, Lake(str(tmp_path / "lake")), dt.date(2025, 3, 1))
