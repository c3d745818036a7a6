"""Configuration: precedence, provenance, and one clear line for every mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from c360.config import env_name, example_toml, load_config
from c360.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c360.toml"
    path.write_text(text)
    return path


def test_defaults_are_embedded_engines() -> None:
    resolved = load_config(environ={})
    assert resolved.settings.serving.url.startswith("sqlite:///")
    assert resolved.settings.log.url.startswith("local://")
    assert resolved.settings.compute.engine == "duckdb"
    assert all(source == "default" for _, _, source in resolved.items())


def test_precedence_overrides_then_env_then_file_then_default(tmp_path: Path) -> None:
    path = write(tmp_path, '[log]\npartitions = 8\nurl = "local://from-file"\n[api]\nport = 9000\n')
    env = {"C360_LOG_PARTITIONS": "16", "C360_API_PORT": "9100"}
    resolved = load_config(path, environ=env, overrides={"api.port": 9200})
    settings, sources = resolved.settings, resolved.sources
    assert (settings.api.port, sources["api.port"]) == (9200, "command line")
    assert (settings.log.partitions, sources["log.partitions"]) == (16, "env C360_LOG_PARTITIONS")
    assert (settings.log.url, sources["log.url"]) == ("local://from-file", str(path))
    assert "lake.url" not in sources  # default
    shown = {key: source for key, _, source in resolved.items()}
    assert shown["lake.url"] == "default"


def test_config_file_found_through_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[serving]\nurl = "postgresql://u@h/db"\n')
    resolved = load_config(environ={"C360_CONFIG": str(path)})
    assert resolved.settings.serving.url == "postgresql://u@h/db"


@pytest.mark.parametrize(
    ("text", "env", "key", "fragment"),
    [
        ("[serving]\nurll = 'x'\n", {}, "serving.urll", "known keys: serving.url"),
        ("[servng]\nurl = 'x'\n", {}, "servng.url", "unknown key"),
        ("[serving]\nurl = 'mysql://x/y'\n", {}, "serving.url", "accepted: sqlite:///PATH"),
        ("", {"C360_LOG_URL": "http://x"}, "log.url", "accepted: local://PATH"),
        ("", {"C360_LOG_URL": "  "}, "log.url", "a value is required"),
        ("", {"C360_LOG_PARTITIONS": "0"}, "log.partitions", "greater than or equal to 1"),
        ("", {"C360_LOG_SEGMENT_BYTES": "4096"}, "log.segment_bytes", "set at least 1048576"),
        ("[log]\nsegment_hours = -1\n", {}, "log.segment_hours", "set 0 (roll by size only)"),
        ("", {"C360_LAKE_URL": "nosuchfs://x"}, "lake.url", "unknown filesystem"),
        ("", {"C360_COMPUTE_ENGINE": "flink"}, "compute.engine", "'duckdb' or 'spark'"),
        ("", {"C360_SERVNG_URL": "x"}, "C360_SERVNG_URL", "unknown environment variable"),
        ("", {"C360_SOURCES_MYSQL_URL": "not a url"}, "sources.mysql.url", "SQLAlchemy URL"),
        (
            "",
            {"C360_LOG_KAFKA_PROPERTIES": "security.protocol=SSL; ssl.ca.location"},
            "log.kafka_properties",
            "its key: 'ssl.ca.location'); write KEY=VALUE pairs",
        ),
        (
            "",
            {"C360_LOG_KAFKA_PROPERTIES": "acks=1"},
            "log.kafka_properties",
            "acks is set by c360 itself (acks=all, with the idempotent producer); remove it",
        ),
        ("", {"C360_SOURCES_ENABLED": "mysql,segment"}, "sources.enabled", "unknown source"),
        ('[sources]\nenabled = ["zendesk"]\n', {}, "sources.enabled", "add it"),
        (
            "[churn]\nband_thresholds = [0.7, 0.2]\n",
            {},
            "churn.band_thresholds",
            "need 0 < low < high < 1",
        ),
    ],
)
def test_mistakes_name_the_key_and_what_is_accepted(
    tmp_path: Path, text: str, env: dict[str, str], key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text), environ=env)
    assert raised.value.key == key
    assert fragment in str(raised.value)


def test_lists_come_from_the_environment_as_comma_separated_text() -> None:
    settings = load_config(
        environ={"C360_SOURCES_ENABLED": "mysql, zendesk", "C360_CHURN_BAND_THRESHOLDS": "0.2,0.5"}
    ).settings
    assert settings.sources.enabled == ("mysql", "zendesk")
    assert settings.churn.band_thresholds == (0.2, 0.5)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


def test_test_suite_variables_are_not_config() -> None:
    load_config(environ={"C360_TEST_POSTGRES_URL": "postgresql://x/y"})


def test_env_names_follow_the_dotted_keys() -> None:
    assert env_name("sources.mysql.url") == "C360_SOURCES_MYSQL_URL"


def test_committed_example_is_current_and_loads() -> None:
    example = ROOT / "c360.example.toml"
    assert example.read_text() == example_toml(), (
        "regenerate: c360 config example > c360.example.toml"
    )
    assert load_config(example, environ={}).settings == load_config(environ={}).settings


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "c360", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )


def test_cli_prints_one_line_and_exits_2_on_bad_config(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "C360_SERVING_URL": "oracle://x"}
    result = run_cli("config", "show", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "serving.url" in result.stderr and "sqlite:///PATH" in result.stderr
    debug = run_cli("--debug", "config", "show", env=env, cwd=tmp_path)
    assert "Traceback" in debug.stderr


def test_kafka_properties_parse_and_stay_secret(tmp_path: Path) -> None:
    env = {"C360_LOG_KAFKA_PROPERTIES": " sasl.username = k ; sasl.password=p=w; ; "}
    log = load_config(environ=env).settings.log
    assert log.kafka_client_properties() == {"sasl.username": "k", "sasl.password": "p=w"}
    assert "p=w" not in repr(log)
    assert load_config(environ={}).settings.log.kafka_client_properties() == {}


def test_cli_config_show_prints_values_and_origins(tmp_path: Path) -> None:
    write(tmp_path, "[api]\nport = 9001\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "C360_LOG_PARTITIONS": "3",
        "C360_LOG_KAFKA_PROPERTIES": "sasl.password=hunter2",
    }
    result = run_cli("config", "show", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "9001" in lines["api.port"] and "c360.toml" in lines["api.port"]
    assert "env C360_LOG_PARTITIONS" in lines["log.partitions"]
    assert "[default]" in lines["lake.url"]
    assert "hunter2" not in result.stdout and "log.kafka_properties" in lines
