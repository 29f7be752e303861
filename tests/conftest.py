"""Shared fixtures: every test gets real sockets on 127.0.0.1."""

from __future__ import annotations

import logging

import pytest

pytest_plugins = ["hubbub.testing.fixtures"]  # redis_server, redis_url (the plugin users enable the same way)


@pytest.fixture(autouse=True)
def _hubbub_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hubbub")
