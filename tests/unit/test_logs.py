"""JSON logs: one parseable object per line, with exceptions and extra fields."""

from __future__ import annotations

import io
import json
import logging

from hubbub.serve.logs import JsonFormatter, configure_logging


def test_each_record_is_one_json_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("hubbub.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("connect %s from %s", "c1", "203.0.113.5", extra={"client_id": "c1", "path": "/chat"})
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            logger.exception("handler failed")
        logger.error("odd extra", extra={"obj": object()})
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert first["message"] == "connect c1 from 203.0.113.5"
    assert first["level"] == "warning"
    assert first["logger"] == "hubbub.test.json"
    assert first["client_id"] == "c1"
    assert first["path"] == "/chat"
    assert first["time"].endswith("+00:00")
    assert second["level"] == "error"
    assert "ValueError: bad\nthing" in second["exception"]
    assert third["obj"].startswith("<object object")


def test_configure_logging_replaces_handlers() -> None:
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        configure_logging("debug", "json")
        configure_logging("warning", "json")
        assert len(root.handlers) == 1
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        assert root.level == logging.WARNING
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
