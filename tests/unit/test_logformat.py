"""c360's log lines: text by default, JSON lines by configuration, with the context of the
work (request, batch date, consumer group) and secrets masked."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from c360 import logformat


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "c360"]:
        root.removeHandler(handler)


def test_json_lines_carry_the_component_and_the_context(lines: io.StringIO) -> None:
    logformat.configure("json", "INFO", stream=lines)
    log = logging.getLogger("c360.pipeline.daily")
    with logformat.log_context(batch_date="2025-06-02"):
        log.info("step %s done", "publish")
    log.info("after the batch")
    log.debug("not written at INFO")
    first, second = (orjson.loads(line) for line in lines.getvalue().splitlines())
    assert first["component"] == "c360.pipeline.daily"
    assert (first["level"], first["message"], first["batch_date"]) == (
        "info",
        "step publish done",
        "2025-06-02",
    )
    assert first["time"].endswith("+00:00")
    assert "batch_date" not in second


def test_secrets_and_exceptions_in_json_lines(lines: io.StringIO) -> None:
    logformat.configure("json", "INFO", stream=lines)
    try:
        raise RuntimeError("cannot reach postgresql://c360:hunter2@db/serving")
    except RuntimeError:
        logging.getLogger("c360.stores").exception("store down at %s", "mysql://u:pw@h/shop")
    (line,) = [orjson.loads(text) for text in lines.getvalue().splitlines()]
    assert line["message"] == "store down at mysql://u:***@h/shop"
    assert "hunter2" not in line["exception"] and "RuntimeError" in line["exception"]


def test_text_lines_are_readable(lines: io.StringIO) -> None:
    logformat.configure("text", "INFO", stream=lines)
    with logformat.log_context(consumer_group="speed"):
        logging.getLogger("c360.pipeline.stream_worker").warning("retrying")
    text = lines.getvalue()
    assert "WARNING c360.pipeline.stream_worker [consumer_group=speed] retrying" in text
