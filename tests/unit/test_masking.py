"""Passwords in URLs never reach people: the one helper, and where it is applied (config show,
validation and adapter errors, log lines)."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner

from c360.cli.main import cli
from c360.config import load_config
from c360.errors import ConfigError
from c360.lake import Lake
from c360.logs import open_log
from c360.masking import install_log_masking, mask_secrets


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://c360:hunter2@db:5432/serving", "postgresql://c360:***@db:5432/serving"),
        (
            "mysql+pymysql://root:p@ss:w0rd@127.0.0.1/shop",
            "mysql+pymysql://root:***@127.0.0.1/shop",
        ),
        ("s3://AKIAKEY:hunter2@bucket/lake", "s3://AKIAKEY:***@bucket/lake"),
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("kafka://u:hunter2@b1:9092,b2:9092", "kafka://u:***@b1:9092,b2:9092"),
        (
            "postgresql://db/serving?user=c360&password=hunter2&sslmode=require",
            "postgresql://db/serving?user=c360&password=***&sslmode=require",
        ),
        (
            "error: store 'postgresql://u:hunter2@h/db' (reading): refused",
            "error: store 'postgresql://u:***@h/db' (reading): refused",
        ),
        (
            "two: http://a:hunter2@x/ and https://b:hunter3@y/",
            "two: http://a:***@x/ and https://b:***@y/",
        ),
    ],
)
def test_passwords_in_urls_are_masked(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked
    assert "hunter" not in mask_secrets(text)


@pytest.mark.parametrize(
    "text",
    [
        "sqlite:///data/serving.db",
        "postgresql://c360@db:5432/serving",
        "kafka://b1:9092,b2:9092?session_timeout_ms=10000",
        "http://127.0.0.1:8360/v1/profiles/by/email/a@x.com",
        "local://data/log",
        "a plain message with a = sign",
    ],
)
def test_urls_without_credentials_are_unchanged(text: str) -> None:
    assert mask_secrets(text) == text


URLS = {
    "C360_SERVING_URL": "postgresql://c360:hunter2@db:5432/serving",
    "C360_SOURCES_MYSQL_URL": "mysql+pymysql://shop:hunter3@mariadb:3306/shop",
    "C360_LAKE_URL": "s3://AKIAKEY:hunter4@bucket/lake",
}


def test_config_show_masks_every_url_password() -> None:
    runner = CliRunner()
    for args in (["config", "show"], ["config", "show", "--json"]):
        result = runner.invoke(cli, args, env=URLS)
        assert result.exit_code == 0, result.output
        assert "hunter" not in result.output
        assert "postgresql://c360:***@db:5432/serving" in result.output
        assert "mysql+pymysql://shop:***@mariadb:3306/shop" in result.output
        assert "s3://AKIAKEY:***@bucket/lake" in result.output
    shown = json.loads(runner.invoke(cli, ["config", "show", "--json"], env=URLS).stdout)
    assert shown["serving.url"] == {
        "value": "postgresql://c360:***@db:5432/serving",
        "source": "env C360_SERVING_URL",
    }
    # the settings themselves keep the password: only what is shown is masked
    assert load_config(environ=URLS).settings.serving.url == URLS["C360_SERVING_URL"]


@pytest.mark.parametrize(
    "env",
    [
        {"C360_SERVING_URL": "mysql://u:hunter2@h/db"},  # not a serving store
        {"C360_LAKE_URL": "nosuchfs://u:hunter2@bucket/lake"},
        {"C360_LOG_URL": "http://u:hunter2@h"},
        {"C360_SOURCES_MAILCHIMP_BASE_URL": "ftp://u:hunter2@h"},
    ],
)
def test_config_errors_mask_the_url_they_quote(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(environ=env)
    assert "hunter2" not in str(raised.value) and "***" in str(raised.value)


def test_adapter_errors_mask_the_url_they_quote() -> None:
    with pytest.raises(ConfigError) as lake:
        Lake("nosuchfs://u:hunter2@bucket/lake")
    with pytest.raises(ConfigError) as kafka:
        open_log("kafka://u:hunter2@broker:9092", 1)
    with pytest.raises(ConfigError) as log:
        open_log("nosuch://u:hunter2@somewhere", 1)
    for raised in (lake, kafka, log):
        assert "hunter2" not in str(raised.value), str(raised.value)
    assert "sasl.password in log.kafka_properties" in str(kafka.value)


def test_log_lines_and_logged_tracebacks_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    install_log_masking()
    install_log_masking()  # idempotent
    logger = logging.getLogger("c360.test_masking")
    with caplog.at_level(logging.INFO, logger="c360.test_masking"):
        logger.info("connecting to %s", "postgresql://u:hunter2@h/db")
        logger.info("in the message: mysql://u:hunter3@h/db, %d tries", 3)
        logger.info("split: %s://u:%s@h/db", "postgresql", "hunter4")
        try:
            raise RuntimeError("cannot open s3://KEY:hunter5@bucket")
        except RuntimeError:
            logger.exception("lake failed")
    text = caplog.text
    assert "hunter" not in text, text
    assert "postgresql://u:***@h/db" in text and "3 tries" in text
    record = caplog.records[0]
    assert record.args == ("postgresql://u:***@h/db",)  # the arguments keep their shape
    failed = caplog.records[-1]
    assert failed.exc_text is not None and "s3://KEY:***@bucket" in failed.exc_text
    assert failed.exc_info is None  # a formatter reading the exception itself cannot leak it
