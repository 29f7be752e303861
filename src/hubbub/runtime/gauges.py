"""Sizes that are read when someone looks (a metrics scrape, the dashboard), never kept up to date.

A part of the server that holds something countable (the hub's connections and
rooms, a history store's streams, an inbox's pending messages) adds a gauge
with a function that measures it; `hubbub.serve.metrics` reads every gauge at
scrape time. Nothing here runs on the message path.

    hub.gauges.add("hubbub_history_streams", "Rooms with a history here.", store.stream_count)
    hub.gauges.add("hubbub_inbox_messages", "Undelivered inbox messages.", inbox.sizes, label="user_kind")

A reader may return one number, or a mapping of label value to number (then
`label` names the label).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger("hubbub.gauges")

Reading = float | int | Mapping[str, float | int]
Reader = Callable[[], Reading]

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


@dataclass(frozen=True, slots=True)
class Gauge:
    """One size: its metric name, help text, how to read it, and the label its mapping uses."""

    name: str
    help: str
    read: Reader
    label: str | None = None


class Sized(Protocol):
    """Something that counts what it keeps by kind, or answers None when this process keeps none of it."""

    def sizes(self) -> dict[str, int] | None: ...


class Gauges:
    """The sizes one hub (one process) can report."""

    def __init__(self) -> None:
        self._gauges: dict[str, Gauge] = {}

    def add(self, name: str, help: str, read: Reader, *, label: str | None = None) -> None:
        """Report `read()` as the gauge `name` (replaces a gauge of the same name)."""
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not a valid metric name")
        if label is not None and not _NAME.match(label):
            raise ValueError(f"{label!r} is not a valid label name")
        self._gauges[name] = Gauge(name, help, read, label)

    def add_sizes(self, name: str, help: str, source: Sized) -> None:
        """Report `source.sizes()` as the gauge `name`, labelled by "kind", if this process keeps its sizes."""
        if source.sizes() is not None:
            self.add(name, help, lambda: source.sizes() or {}, label="kind")

    def remove(self, name: str) -> None:
        """Stop reporting `name` (e.g. when a store closes)."""
        self._gauges.pop(name, None)

    def __iter__(self) -> Iterator[Gauge]:
        return iter(list(self._gauges.values()))

    def value(self, name: str) -> float | None:
        """The current total of one gauge (a mapping is summed); None if unknown or it failed."""
        gauge = self._gauges.get(name)
        if gauge is None:
            return None
        reading = read_safely(gauge)
        if reading is None:
            return None
        if isinstance(reading, Mapping):
            return float(sum(reading.values()))
        return float(reading)


def read_safely(gauge: Gauge) -> Reading | None:
    """The gauge's reading, or None (logged) if its reader failed: one broken size never
    spoils a whole scrape."""
    try:
        return gauge.read()
    except Exception:
        logger.exception("gauge %s could not be read", gauge.name)
        return None
