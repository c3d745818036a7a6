"""The suite's service/extra policy (``tests/plugins/services.py``), run on small inner suites.

Each test writes a tiny suite and runs it in-process with the plugin (pytester). Requirements
are faked where the point is the policy, not the check, so these tests need no service.
"""

from __future__ import annotations

import stat
import sys
import tomllib
from pathlib import Path

import pytest

from plugins import services

pytest_plugins = ["pytester"]

PYPROJECT = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
MARKERS: list[str] = PYPROJECT["tool"]["pytest"]["ini_options"]["markers"]

CONFTEST = """
import pytest
from plugins.services import service_fixture

@service_fixture("kafka", scope="session")
def policy_cluster():
    yield "cluster"

@pytest.fixture
def policy_wrapper(policy_cluster):
    return policy_cluster
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """An inner suite with the real marker declarations, strict markers, warnings as errors."""
    markers = "".join(f"\n    {line}" for line in MARKERS)
    pytester.makeini(
        f"[pytest]\naddopts = --strict-markers -ra\nfilterwarnings = error\nmarkers ={markers}\n"
    )
    pytester.makeconftest(CONFTEST)
    return pytester


def run(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest(*args, plugins=[services])


def fake(monkeypatch: pytest.MonkeyPatch, marker: str, reason: str | None) -> list[str]:
    """Replace ``marker``'s check by one answering ``reason``; returns the list of its calls."""
    calls: list[str] = []

    def check() -> str | None:
        calls.append(marker)
        return reason

    monkeypatch.setitem(services.REQUIREMENTS, marker, services.Requirement(marker, check))
    return calls


MARKED = """
import pytest

@pytest.mark.kafka
def test_one(policy_cluster):
    assert policy_cluster == "cluster"

@pytest.mark.kafka
def test_two():
    pass

def test_unmarked():
    pass
"""


def test_a_missing_extra_skips_with_the_reason_on_a_laptop(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # the real check: import fails
    suite.makepyfile(MARKED)
    result = run(suite)
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        ["SKIPPED*[[]kafka[]] confluent-kafka is not installed (*): pip install 'c360[[]kafka[]]'"]
    )


def test_a_missing_requirement_fails_with_the_reason_under_ci(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    fake(monkeypatch, "kafka", "no broker today")
    suite.makepyfile(MARKED)
    result = run(suite)
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*[[]kafka[]] no broker today (CI=true: * must run, not skip)*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_present_requirement_is_checked_once_and_the_tests_run(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    calls = fake(monkeypatch, "kafka", None)
    untouched = fake(monkeypatch, "postgres", "never asked")
    suite.makepyfile(MARKED)
    run(suite).assert_outcomes(passed=3)
    assert calls == ["kafka"]
    assert untouched == []


def test_a_service_fixture_without_its_marker_is_a_collection_error(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake(monkeypatch, "kafka", None)
    suite.makepyfile(
        """
        import pytest

        def test_direct(policy_cluster):
            pass

        def test_through_a_fixture(policy_wrapper):
            pass

        @pytest.mark.parametrize("n", [1, pytest.param(2, marks=pytest.mark.kafka)])
        def test_param(policy_cluster, n):
            pass
        """
    )
    result = run(suite)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    message = "uses the kafka fixture 'policy_cluster' but is not marked kafka"
    result.stdout.fnmatch_lines(
        [
            f"*test_direct {message}*",
            f"*test_through_a_fixture {message}*",
            f"*test_param[[]1[]] {message}*",
        ]
    )
    assert "test_param[2]" not in result.stdout.str()


def test_a_service_fixture_fetched_at_run_time_needs_the_marker_too(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake(monkeypatch, "kafka", None)
    suite.makepyfile(
        """
        import pytest

        @pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
        def backend(request):
            return request.getfixturevalue("policy_cluster") if request.param == "kafka" else 0

        def test_backend(backend):
            pass

        def test_fetches(request):
            request.getfixturevalue("policy_cluster")
        """
    )
    result = run(suite)
    result.assert_outcomes(passed=3, errors=1)  # test_fetches passes, then errors
    result.stdout.fnmatch_lines(
        ["*test_fetches uses the kafka fixture 'policy_cluster' (fetched at run time) but *"]
    )


def test_what_is_not_generated_is_listed_with_the_reason(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest
        from plugins.services import declare_not_applicable

        def pytest_generate_tests(metafunc):
            declare_not_applicable(metafunc.config, "test_x[remote]", "remote cannot: no disk")
            metafunc.parametrize("where", ["local"])

        def test_x(where):
            pass
        """
    )
    result = run(suite)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*= 1 declared not applicable (not generated) =*", "test_x[[]remote[]]: remote cannot*"]
    )


# -- the checks themselves ------------------------------------------------------------------------
def test_an_unreachable_server_is_named_without_its_password(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/no/such/folder/db.sqlite"
    reason = services._server(url, "SQLite", "C360_TEST_X_URL")
    assert reason is not None
    assert reason.startswith(f"SQLite unreachable at {url} (C360_TEST_X_URL): OperationalError")
    assert services._server(f"sqlite:///{tmp_path}/db.sqlite", "SQLite", "X") is None


@pytest.mark.parametrize(
    ("banner", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("no version here", None),
    ],
)
def test_the_java_version_is_read_from_its_banner(
    tmp_path: Path, banner: str, major: int | None
) -> None:
    java = tmp_path / "java"
    java.write_text(f"#!/bin/sh\necho '{banner}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    assert services._java_major(str(java)) == major


def test_every_service_marker_is_declared_and_has_a_requirement() -> None:
    declared = {line.split(":", 1)[0] for line in MARKERS}
    assert set(services.REQUIREMENTS) <= declared
    assert declared - set(services.REQUIREMENTS) == {"slow"}
