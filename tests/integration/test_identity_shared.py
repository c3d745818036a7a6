"""Identity on a population that shares identifiers (issue 17): households with one mailbox
and one home phone, generated with their ground truth. A shared mailbox must not merge two
people — with or without accounts — and `c360 identity explain` must show why it was not proof.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from c360.cli.main import cli
from c360.config import Settings, load_config
from c360.contracts.identity import SOURCE, ZONE
from c360.engines import open_compute
from c360.identity.evaluate import evaluate, shared_email_key_share
from c360.identity.graph import CONTRADICTED
from c360.ingest.backfill import backfill_file
from c360.ingest.run import ingest
from c360.lake import Lake
from c360.pipeline.demo import demo_overrides
from c360.pipeline.identity import resolve
from c360.simulator import generate

CUSTOMERS, DAYS = 1000, 120
SHARED = 0.04  # twice the default: well above the 2 % of email keys the issue asks for

pytestmark = pytest.mark.slow


def _overrides(folder: Path) -> dict[str, object]:
    return {
        **demo_overrides(folder),
        "simulator.customers": CUSTOMERS,
        "simulator.days": DAYS,
        "simulator.shared_email_share": SHARED,
        "simulator.shared_phone_share": SHARED,
    }


def _day(settings: Settings) -> dt.date:
    return settings.simulator.start_date + dt.timedelta(days=settings.simulator.days - 1)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("shared") / "world"
    settings = load_config(environ={}, overrides=_overrides(folder)).settings
    day = _day(settings)
    generate(settings, replace=True)
    ingest(settings, day, ("mysql", "mailchimp", "zendesk"))
    lake = Lake(settings.lake.url)
    backfill_file(lake, Path(settings.sources.clickstream.path), "clickstream", day)
    resolve(settings, lake, day)
    return settings


def test_shared_mailboxes_do_not_merge_people(resolved: Settings):
    truth = Path(resolved.simulator.truth_dir)
    assert shared_email_key_share(truth) >= 0.02
    assignment = Lake(resolved.lake.url).read_partition(SOURCE, "assignment", _day(resolved), ZONE)
    scores = evaluate(open_compute(resolved.compute), assignment, truth)
    assert scores.precision >= 0.995, scores.as_dict()
    assert scores.recall >= 0.99, scores.as_dict()


def test_explain_shows_the_conflict_of_a_shared_mailbox(resolved: Settings):
    lake, day = Lake(resolved.lake.url), _day(resolved)
    ignored = lake.read_partition(SOURCE, "ignored", day, ZONE)
    contradicted = ignored.filter(pc.equal(ignored["reason"], CONTRADICTED))
    assert contradicted.num_rows > 0
    mailbox = contradicted["id_value"][0].as_py()
    records = lake.read_partition(SOURCE, "records", day, ZONE)
    on_it = records.filter(pc.equal(records["email_key"], mailbox))["record_key"]
    assignment = lake.read_partition(SOURCE, "assignment", day, ZONE)
    persons = assignment.filter(pc.is_in(assignment["record_key"], on_it))["person_id"]
    assert len(set(persons.to_pylist())) >= 2  # the household's two people stay apart

    env = {
        f"C360_{k.upper().replace('.', '_')}": str(v)
        for k, v in _overrides(Path(resolved.lake.url).parent).items()
    }
    runner = CliRunner(env={**os.environ, **env})
    person = persons[0].as_py()
    explained = runner.invoke(cli, ["identity", "explain", person, "--date", day.isoformat()])
    assert explained.exit_code == 0, explained.output
    assert f"ignored evidence: email={mailbox} ({CONTRADICTED})" in explained.stdout
    other = next(p for p in persons.to_pylist() if p != person)
    assert f"of person {other}" in explained.stdout  # the other person's record on the mailbox

    as_json = runner.invoke(
        cli, ["identity", "explain", person, "--date", day.isoformat(), "--json"]
    )
    shared_with = json.loads(as_json.stdout)["shared_with"]
    assert {r["person_id"] for r in shared_with} >= {other}
    assert all(r["email_key"] == mailbox for r in shared_with if r["person_id"] == other)
