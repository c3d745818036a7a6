"""The test suite's policy for services and optional extras: one plugin owns it.

**Markers.** A test that needs a service or an optional extra carries its marker (declared in
pyproject.toml): ``postgres``, ``mysql``, ``spark``, ``kafka``, ``browser``, ``prometheus``,
``dagster``. The default run selects everything; ``-m "not spark"`` and the like leave a
backend out.

**Requirements.** Before a marked test is set up, the plugin checks what its marker needs, once
per session (the answer is cached):

========  =================================================================================
postgres  psycopg importable; a PostgreSQL server answering at ``C360_TEST_POSTGRES_URL``
          (default ``postgresql://postgres@127.0.0.1:5432/test``)
mysql     PyMySQL importable; MariaDB/MySQL answering at ``C360_TEST_MYSQL_URL``
          (default ``mysql+pymysql://root@127.0.0.1:3306/test``)
spark     PySpark importable; Java 17+ (``$JAVA_HOME/bin/java``, else ``java`` on PATH)
kafka     confluent-kafka importable (the tests run on librdkafka's in-process mock
          cluster, ``tests/kafka_mock.py``: no broker to install)
browser   Playwright importable; a ``chromium`` on PATH
prometheus  ``prometheus``, ``promtool`` and ``prometheus-pushgateway`` on PATH (Debian's packages)
dagster   Dagster importable (``c360[dagster]``)
========  =================================================================================

**Skip on a laptop, fail in CI.** When a requirement is missing the test is skipped with the
reason; under ``CI=true`` it errors at setup with the same reason instead, so CI never passes by
skipping. Service fixtures rely on this: they run only once the requirement is known to be
there, so anything that goes wrong inside them is a real error, never a skip. No test calls
``pytest.importorskip`` or skips by hand for a service or an extra.

**Markers are enforced.** Fixtures that hand a service to a test are declared with
:func:`service_fixture` (``postgres_url``, ``mysql_url``, ``spark``, the Kafka mock clusters). A
test that uses one, directly or through other fixtures, without the matching marker is a
collection error naming the test and the marker. A service fixture fetched with
``request.getfixturevalue`` (as the ``store`` fixture does for its ``postgres`` param, which
carries the marker) is checked after the test, which errors if it lacks the marker. Tests that
need a driver but no service fixture (a ``kafka://`` log, a ``postgresql+psycopg://`` URL) are
marked by hand; a run without the extras installed finds any that are not (they fail instead
of skipping).

**Nothing disappears silently.** A test a suite does not generate for a backend that declares
the capability absent (see ``tests/conformance/test_event_log.py``) is recorded with
:func:`declare_not_applicable` and listed, with the reason, in the run's summary.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])

POSTGRES_URL_VARIABLE = "C360_TEST_POSTGRES_URL"
MYSQL_URL_VARIABLE = "C360_TEST_MYSQL_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
SPARK_JAVA = 17  # PySpark 4 (the spark extra) runs on Java 17 or later


def postgres_server_url() -> str:
    """The PostgreSQL server the ``postgres`` tests use (read at each call: tests may set it)."""
    return os.environ.get(POSTGRES_URL_VARIABLE, DEFAULT_POSTGRES_URL)


def mysql_server_url() -> str:
    """The MariaDB/MySQL server the ``mysql`` tests use."""
    return os.environ.get(MYSQL_URL_VARIABLE, DEFAULT_MYSQL_URL)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


# -- the requirements -----------------------------------------------------------------------------
# A check returns None when the requirement is there, else the reason it is not.


def _importable(module: str, package: str, extra: str | None) -> str | None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        install = f"pip install 'c360[{extra}]'" if extra else f"pip install {package}"
        return f"{package} is not installed ({exc.__class__.__name__}: {exc}): {install}"
    return None


def _server(url: str, service: str, variable: str) -> str | None:
    """None if a connection to ``url`` opens; else why not (password hidden)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    sqlite = parsed.get_backend_name() == "sqlite"
    engine = create_engine(parsed, connect_args={} if sqlite else {"connect_timeout": 5})
    try:
        with engine.connect():
            return None
    except Exception as exc:  # any failure to connect means "not there"
        cause = getattr(exc, "orig", None) or exc
        detail = (str(cause).strip().splitlines() or [""])[0]
        shown = parsed.render_as_string(hide_password=True)
        kind = cause.__class__.__name__
        return f"{service} unreachable at {shown} ({variable}): {kind}: {detail}"
    finally:
        engine.dispose()


def _java_major(java: str) -> int | None:
    """The major version ``java -version`` reports (``1.8`` is 8), None if unreadable."""
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def _check_postgres() -> str | None:
    return _importable("psycopg", "psycopg", "postgres") or _server(
        postgres_server_url(), "PostgreSQL", POSTGRES_URL_VARIABLE
    )


def _check_mysql() -> str | None:
    return _importable("pymysql", "PyMySQL", "mysql") or _server(
        mysql_server_url(), "MariaDB/MySQL", MYSQL_URL_VARIABLE
    )


def _check_spark() -> str | None:
    if missing := _importable("pyspark", "pyspark", "spark"):
        return missing
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if java is None or not os.path.exists(java):
        where = f"JAVA_HOME={home} has no bin/java" if home else "no java on PATH, no JAVA_HOME"
        return f"Spark needs Java {SPARK_JAVA}+: {where}"
    major = _java_major(java)
    if major is None or major < SPARK_JAVA:
        found = "an unreadable version" if major is None else f"Java {major}"
        return f"Spark needs Java {SPARK_JAVA}+: {java} is {found}"
    return None


def _check_kafka() -> str | None:
    return _importable("confluent_kafka", "confluent-kafka", "kafka")


def _check_dagster() -> str | None:
    return _importable("dagster", "dagster", "dagster")


def _check_browser() -> str | None:
    if missing := _importable("playwright.sync_api", "playwright", None):
        return missing
    if shutil.which("chromium") is None:
        return "the browser tests need Chromium: no chromium on PATH"
    return None


def _check_prometheus() -> str | None:
    if shutil.which("promtool") is None:
        return "the alert rule tests need promtool: apt-get install prometheus"
    if shutil.which("prometheus") is None:
        return "the scrape test needs Prometheus itself: apt-get install prometheus"
    if shutil.which("prometheus-pushgateway") is None:
        return "the batch metrics tests need a Pushgateway: apt-get install prometheus-pushgateway"
    return None


@dataclass(frozen=True)
class Requirement:
    marker: str
    check: Callable[[], str | None]


REQUIREMENTS: dict[str, Requirement] = {
    r.marker: r
    for r in (
        Requirement("postgres", _check_postgres),
        Requirement("mysql", _check_mysql),
        Requirement("spark", _check_spark),
        Requirement("kafka", _check_kafka),
        Requirement("browser", _check_browser),
        Requirement("prometheus", _check_prometheus),
        Requirement("dagster", _check_dagster),
    )
}


# -- service fixtures ---------------------------------------------------------------------------
# Fixture name -> the marker a test using it must carry. Names are global to the suite: a
# service fixture's name means that service in every module.
SERVICE_FIXTURES: dict[str, str] = {}


def service_fixture(marker: str, **fixture_options: Any) -> Callable[[F], F]:
    """``pytest.fixture(**fixture_options)`` for a fixture that needs ``marker``'s requirement.

    Tests using it must carry the marker (checked at collection); the fixture runs only once
    the requirement is known to be there, so it need not check anything itself.
    """
    if marker not in REQUIREMENTS:
        raise ValueError(f"unknown service marker {marker!r}; known: {sorted(REQUIREMENTS)}")

    def declare(function: F) -> F:
        name = fixture_options.get("name", function.__name__)
        SERVICE_FIXTURES[name] = marker
        return pytest.fixture(**fixture_options)(function)

    return declare


def _missing_markers(item: pytest.Item, fixtures: list[str]) -> list[tuple[str, str]]:
    """(fixture, marker) for each service fixture in ``fixtures`` whose marker ``item`` lacks."""
    return [
        (name, SERVICE_FIXTURES[name])
        for name in fixtures
        if name in SERVICE_FIXTURES and item.get_closest_marker(SERVICE_FIXTURES[name]) is None
    ]


def _unmarked_message(item: pytest.Item, fixture: str, marker: str, how: str = "") -> str:
    return (
        f"{item.nodeid} uses the {marker} fixture {fixture!r}{how} but is not marked "
        f"{marker}: add @pytest.mark.{marker} (or pytestmark, or marks= on the param)"
    )


# -- the hooks ------------------------------------------------------------------------------------
_RESULTS = pytest.StashKey[dict[str, str | None]]()  # marker -> reason missing, None if there
_NOT_APPLICABLE = pytest.StashKey[list[tuple[str, str]]]()  # (test id, reason)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RESULTS] = {}
    config.stash[_NOT_APPLICABLE] = []


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    """Tests using a service fixture without its marker fail their module's collection."""
    report = yield
    problems = [
        _unmarked_message(item, fixture, marker)
        for item in (report.result if report.passed else [])
        if isinstance(item, pytest.Function)
        for fixture, marker in _missing_markers(item, item.fixturenames)
    ]
    if problems:
        report.outcome, report.longrepr, report.result = "failed", "\n".join(problems), []
    return report


@pytest.fixture(autouse=True)
def _service_fixtures_need_their_markers(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, the same check on every fixture it used, those fetched with
    ``request.getfixturevalue`` included (they are not known at collection)."""
    yield
    for fixture, marker in _missing_markers(request.node, request.fixturenames):
        message = _unmarked_message(request.node, fixture, marker, " (fetched at run time)")
        pytest.fail(message, pytrace=False)


def requirement_missing(config: pytest.Config, marker: str) -> str | None:
    """Why ``marker``'s requirement is not there (None if it is); checked once per session."""
    results = config.stash[_RESULTS]
    if marker not in results:
        results[marker] = REQUIREMENTS[marker].check()
    return results[marker]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (laptop) or fail (CI=true) a marked test whose requirement is missing.

    A plain hookimpl: it runs after the skipping plugin's (a test skipped by its own mark is not
    checked) and before the runner's, which sets the fixtures up.
    """
    for marker in REQUIREMENTS:
        if item.get_closest_marker(marker) is None:
            continue
        reason = requirement_missing(item.config, marker)
        if reason is None:
            continue
        if in_ci():
            pytest.fail(
                f"[{marker}] {reason} (CI=true: tests that need a service or an extra "
                "must run, not skip)",
                pytrace=False,
            )
        pytest.skip(f"[{marker}] {reason}")


def unavailable(reason: str) -> NoReturn:
    """For a requirement only one test has (e.g. restarting the local PostgreSQL): skip with
    ``reason`` on a laptop, fail with it under ``CI=true`` — the suite's one rule."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: tests that need a service must run, not skip)")
    pytest.skip(reason)


# -- declared, not generated ----------------------------------------------------------------------
def declare_not_applicable(config: pytest.Config, test: str, reason: str) -> None:
    """Record that ``test`` is deliberately not generated, and why: listed in the summary."""
    config.stash[_NOT_APPLICABLE].append((test, reason))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    declared = config.stash.get(_NOT_APPLICABLE, [])
    if declared:
        terminalreporter.write_sep("=", f"{len(declared)} declared not applicable (not generated)")
        for test, reason in declared:
            terminalreporter.write_line(f"{test}: {reason}")
