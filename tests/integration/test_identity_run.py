"""The whole identity step on a simulated world: accuracy against the simulator's ground truth,
stable ids across days, `c360 identity run|explain|eval`, and the same ids on Spark."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from c360.cli.main import cli
from c360.config import Settings, load_config
from c360.contracts.identity import SOURCE, ZONE
from c360.engines import open_compute
from c360.engines.duckdb import DuckDBSession
from c360.identity.evaluate import evaluate
from c360.ingest.backfill import backfill_file
from c360.ingest.run import ingest
from c360.lake import Lake
from c360.pipeline.demo import demo_overrides
from c360.pipeline.identity import resolve
from c360.simulator import generate

CUSTOMERS, DAYS = 1500, 120


def _settings(folder: Path, **overrides: object) -> Settings:
    values = {
        **demo_overrides(folder),
        "simulator.customers": CUSTOMERS,
        "simulator.days": DAYS,
        **overrides,
    }
    return load_config(environ={}, overrides=values).settings


def _last_day(settings: Settings) -> dt.date:
    return settings.simulator.start_date + dt.timedelta(days=settings.simulator.days - 1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A simulated world in the lake (sources ingested, clickstream archived), not resolved."""
    folder = tmp_path_factory.mktemp("identity") / "world"
    settings = _settings(folder)
    day = _last_day(settings)
    generate(settings, replace=True)
    ingest(settings, day, ("mysql", "mailchimp", "zendesk"))
    backfill_file(
        Lake(settings.lake.url), Path(settings.sources.clickstream.path), "clickstream", day
    )
    return settings


@pytest.fixture(scope="module")
def resolved(world: Settings) -> Settings:
    resolve(world, Lake(world.lake.url), _last_day(world))
    return world


def _assignment(settings: Settings, day: dt.date) -> pa.Table:
    return Lake(settings.lake.url).read_partition(SOURCE, "assignment", day, ZONE)


def test_accuracy_against_the_simulator_truth(resolved: Settings):
    scores = evaluate(
        open_compute(resolved.compute),
        _assignment(resolved, _last_day(resolved)),
        Path(resolved.simulator.truth_dir),
    )
    assert scores.records > 5000
    assert scores.precision >= 0.998, scores.as_dict()
    assert scores.f1 >= 0.995, scores.as_dict()  # issue 17: every world size
    assert scores.by_type  # every record type scored
    assert {t.record_type for t in scores.by_type} >= {
        "mysql/customer",
        "mysql/order",
        "zendesk/user",
        "mailchimp/member",
        "clickstream/cookie",
    }


def test_probabilistic_links_join_what_no_key_joins(resolved: Settings):
    lake, day = Lake(resolved.lake.url), _last_day(resolved)
    links = lake.read_partition(SOURCE, "links", day, ZONE)
    splink = links.filter(pc.equal(links["kind"], "probabilistic"))
    assert splink.num_rows > 0
    assert pc.min(splink["match_probability"]).as_py() >= resolved.identity.match_probability
    contributions = json.loads(splink["contributions"][0].as_py())
    assert contributions and all(isinstance(v, float) for v in contributions.values())


def test_rerunning_a_day_gives_the_same_ids(resolved: Settings):
    day = _last_day(resolved)
    before = _assignment(resolved, day)
    resolve(resolved, Lake(resolved.lake.url), day)
    assert _assignment(resolved, day).equals(before)


def test_compute_memory_limit_bounds_every_duckdb_the_step_opens(
    resolved: Settings, monkeypatch: pytest.MonkeyPatch
):
    """A memory budget that reached only some engines let the 1M-customer world's identity
    step grow past 24 GB; each in-process DuckDB must run under compute.memory_limit (every
    one is a DuckDBSession). On DuckDB the whole step is one session: extraction, every stage
    and Splink work on its tables, so the one budget bounds them all."""
    limits: list[str] = []
    opened = DuckDBSession.__init__

    def recording(self: DuckDBSession, threads: int = 0, memory_limit: str = "") -> None:
        opened(self, threads, memory_limit)
        limits.append(self.rows("SELECT current_setting('memory_limit')")[0][0])

    monkeypatch.setattr(DuckDBSession, "__init__", recording)
    limited = resolved.model_copy(
        update={"compute": resolved.compute.model_copy(update={"memory_limit": "1GB"})}
    )
    day = _last_day(resolved)
    before = _assignment(resolved, day)
    resolve(limited, Lake(limited.lake.url), day)
    budget = limits[0] if limits else None
    assert len(limits) == 1, limits
    assert budget == "953.6 MiB" and set(limits) == {budget}, limits
    assert _assignment(resolved, day).equals(before)


def test_cli_run_explain_and_eval(resolved: Settings):
    env = {
        f"C360_{k.upper().replace('.', '_')}": v
        for k, v in demo_overrides(Path(resolved.lake.url).parent).items()
    }
    env |= {"C360_SIMULATOR_CUSTOMERS": str(CUSTOMERS), "C360_SIMULATOR_DAYS": str(DAYS)}
    runner = CliRunner(env={**{k: v for k, v in os.environ.items()}, **env})
    day = _last_day(resolved).isoformat()

    ran = runner.invoke(cli, ["identity", "run", "--date", day, "--json"])
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.stdout)
    assert report["records"] > 5000 and report["persons"] > CUSTOMERS

    scored = runner.invoke(cli, ["identity", "eval", "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["precision"] >= 0.998

    links = Lake(resolved.lake.url).read_partition(SOURCE, "links", _last_day(resolved), ZONE)
    splink = links.filter(pc.equal(links["kind"], "probabilistic"))
    assignment = _assignment(resolved, _last_day(resolved))
    joined = assignment.filter(pc.equal(assignment["record_key"], splink["left_key"][0]))
    person = joined["person_id"][0].as_py()
    explained = runner.invoke(cli, ["identity", "explain", person])
    assert explained.exit_code == 0, explained.output
    assert f"person {person}" in explained.output
    assert splink["left_key"][0].as_py() in explained.output
    assert "splink weight" in explained.output

    unknown = runner.invoke(cli, ["identity", "explain", "p_0000000000000000"])
    assert unknown.exit_code != 0 and "no person" in str(unknown.exception or unknown.output)


def test_ids_survive_from_one_day_to_a_later_one(resolved: Settings):
    """Runs last: it gives the last day a previous state (ten days earlier)."""
    lake, day = Lake(resolved.lake.url), _last_day(resolved)
    earlier = day - dt.timedelta(days=10)
    resolve(resolved, lake, earlier)
    report = resolve(resolved, lake, day)
    before = _assignment(resolved, earlier)
    after = _assignment(resolved, day)
    redirects = lake.read_partition(SOURCE, "person_redirect", day, ZONE)
    live = set(after["person_id"].to_pylist())
    retired = dict(
        zip(redirects["retired_id"].to_pylist(), redirects["person_id"].to_pylist(), strict=True)
    )
    for person in set(before["person_id"].to_pylist()):
        assert person in live or retired.get(person) in live, person
    # a record keeps its person unless that person merged into another
    kept = before.join(after, "record_key", join_type="inner", right_suffix="_after")
    moved = kept.filter(pc.not_equal(kept["person_id"], kept["person_id_after"]))
    assert (
        all(
            retired.get(old) == new
            for old, new in zip(
                moved["person_id"].to_pylist(), moved["person_id_after"].to_pylist(), strict=True
            )
        )
        or report.splits > 0
    )
