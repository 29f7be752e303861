"""Prometheus metrics, read at scrape time from counters the server already keeps.

Nothing here runs per message: the transport and the hub count in plain
integers (`TransportStats`), handlers are timed into plain lists
(`HandlerLatency`), sizes are measured when asked (`Gauges`), and the broker
keeps its own counters. `HubbubCollector` turns them into metric families
when Prometheus scrapes `/metrics`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from hubbub.runtime.gauges import read_safely
from hubbub.web.response import Response

if TYPE_CHECKING:
    from hubbub.runtime.hub import Hub

METRICS_PATH = "/metrics"


def engine_name(hub: Hub) -> str:
    """ "memory", "redis", ... from the broker's class name."""
    name = type(hub.broker).__name__
    return (name[: -len("Broker")] if name.endswith("Broker") else name).lower() or "broker"


class HubbubCollector(Collector):
    """Every hubbub metric of one process (one hub)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        stats = hub.stats
        yield _counter("hubbub_messages_received", "Messages received from clients.", stats.messages_received)
        yield _counter("hubbub_messages_sent", "Messages queued for clients.", stats.messages_sent)
        yield _counter(
            "hubbub_dropped_messages",
            "Messages dropped because a client was over its backpressure limit.",
            stats.dropped_messages,
        )
        yield _counter(
            "hubbub_backpressure_closes",
            "Connections closed (1008) for going over the backpressure limit.",
            stats.backpressure_closes,
        )
        yield _counter(
            "hubbub_fd_refusals",
            "Connections answered 503 because the process was out of file descriptors.",
            stats.fd_refusals,
        )
        yield self._handler_seconds()
        yield from self._gauges()
        yield from self._broker()

    def _handler_seconds(self) -> Metric:
        latency = self.hub.handler_latency
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(latency.bounds, latency.counts, strict=False):
            running += count
            buckets.append((_le(bound), running))
        running += latency.counts[-1]
        buckets.append(("+Inf", running))
        family = HistogramMetricFamily(
            "hubbub_handler_seconds",
            f"Handler run time, from dispatch to the handler's end (one run in {latency.every} timed, counted "
            f"{latency.every} times).",
        )
        family.add_metric([], buckets, latency.sum)
        return family

    def _gauges(self) -> Iterator[Metric]:
        for gauge in self.hub.gauges:
            reading = read_safely(gauge)
            if reading is None:
                continue
            if isinstance(reading, Mapping):
                family = GaugeMetricFamily(gauge.name, gauge.help, labels=[gauge.label or "kind"])
                for label, value in reading.items():
                    family.add_metric([str(label)], float(value))
                yield family
            else:
                yield GaugeMetricFamily(gauge.name, gauge.help, value=float(reading))

    def _broker(self) -> Iterator[Metric]:
        broker = self.hub.broker
        info = GaugeMetricFamily(
            "hubbub_broker_info", "The broker engine and this node's id.", labels=["engine", "node"]
        )
        info.add_metric([engine_name(self.hub), broker.node_id], 1.0)
        yield info
        yield GaugeMetricFamily(
            "hubbub_broker_up", "1 while the broker's engine is reachable, else 0.", value=1.0 if broker.ready else 0.0
        )
        lag = getattr(broker, "publication_lag", None)
        if lag is not None:
            yield GaugeMetricFamily(
                "hubbub_broker_publication_lag_seconds",
                "Time the node's last ping publication took through the broker and back.",
                value=float(lag),
            )
        lost = getattr(broker, "lost_publications", None)
        if lost is not None:
            yield _counter(
                "hubbub_broker_lost_publications", "Publications not sent because the engine was unreachable.", lost
            )
        reconnects = getattr(broker, "reconnects", None)
        if reconnects is not None:
            yield _counter("hubbub_broker_reconnects", "Times the broker's subscription was rebuilt.", reconnects)


def _counter(name: str, help: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help, value=float(value))


def _le(bound: float) -> str:
    return repr(float(bound))


def registry_for(hub: Hub, *, process: bool = True) -> CollectorRegistry:
    """A registry with hubbub's metrics of `hub` and (with `process`) the process, GC and platform ones."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubbubCollector(hub))
    if process:
        for collector in (PROCESS_COLLECTOR, GC_COLLECTOR, PLATFORM_COLLECTOR):
            registry.register(collector)
    return registry


def metrics_response(registry: CollectorRegistry) -> Response:
    """The text exposition of `registry` as an HTTP response."""
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
