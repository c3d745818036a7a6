"""`c360 segment` on a real SQLite store: create, list, show, preview (--json: count and
sample), delete, and an invalid definition shown with a caret under its token."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
from click.testing import CliRunner

import c360
from c360.cli.main import cli
from c360.stores import open_store

IDS = [f"p_{i:02d}" for i in range(20)]
SPEND = [float(i * 50) for i in range(20)]


def published(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'serving.db'}"
    store = open_store(url)
    store.migrate()
    store.publish_batch(
        dt.date(2026, 12, 5),
        {
            "person": pa.table({"person_id": IDS}),
            "identity_map": pa.table(
                {"id_type": ["email"] * 20, "id_value": [f"{i}@x" for i in IDS], "person_id": IDS}
            ),
            "batch_profile": pa.table({"person_id": IDS, "total_lifetime_spend": SPEND}),
        },
    )
    store.dispose()
    return {"C360_SERVING_URL": url}


def test_segment_commands(tmp_path: Path) -> None:
    env = published(tmp_path)
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(cli, ["segment", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    assert "created segment big" in run("create", "big", "total_lifetime_spend >= 600")
    run("create", "small", "total_lifetime_spend < 100", "--description", "two orders at most")
    listed = run("list")
    assert "big" in listed and "members not computed yet" in listed
    assert [s["name"] for s in json.loads(run("list", "--json"))] == ["big", "small"]
    assert "two orders at most" in run("show", "small")
    assert json.loads(run("show", "big", "--json"))["fields"] == ["total_lifetime_spend"]

    members = [p for p, s in zip(IDS, SPEND, strict=True) if s >= 600]
    preview = json.loads(run("preview", "big", "--json", "--sample", "3"))
    assert preview["count"] == len(members)
    assert preview["sample"] == [
        {"person_id": p, "total_lifetime_spend": SPEND[IDS.index(p)]} for p in members[:3]
    ]
    text = run("preview", "big")
    assert text.splitlines()[0] == f"{len(members)} persons match total_lifetime_spend >= 600"
    assert f"{members[0]}  total_lifetime_spend=600.0" in text

    assert "deleted segment big" in run("delete", "big")
    assert [s["name"] for s in json.loads(run("list", "--json"))] == ["small"]


def c360_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    clean["PYTHONPATH"] = str(Path(c360.__file__).parents[1])
    return subprocess.run(
        [sys.executable, "-m", "c360", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_errors_are_one_line_with_a_caret(tmp_path: Path) -> None:
    env = published(tmp_path)
    bad = c360_cli("segment", "create", "x", "total_spend > 5 and age > 3", env=env, cwd=tmp_path)
    assert bad.returncode == 1
    lines = bad.stderr.splitlines()
    assert lines[0] == "total_spend > 5 and age > 3"
    assert lines[1] == "^" * len("total_spend")
    assert lines[2].startswith("error: definition: unknown field 'total_spend'")
    assert "did you mean 'total_lifetime_spend'?" in lines[2]
    missing = c360_cli("segment", "preview", "nobody", env=env, cwd=tmp_path)
    assert missing.returncode != 0 and "no segment 'nobody'" in missing.stderr
    assert c360_cli("segment", "delete", "nobody", env=env, cwd=tmp_path).returncode != 0
