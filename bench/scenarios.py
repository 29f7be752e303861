"""The measurements: what each scenario runs and the metrics it reports.

A scenario returns a flat ``{metric key: value}`` dict; :data:`SCENARIOS`
declares each scenario's metrics so the report can label and compare them.
Peer scenarios run once per peer against one started peer process; setup
scenarios (scale-out) run once per hubbub deployment of their own
(:mod:`bench.deploy`), the first setup being the one the others are compared with.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from bench import deploy, hold, loadgen, measure, procfs, scaleout
from bench.apps.hold import PING_INTERVAL, PING_TIMEOUT
from bench.deploy import Deployment, Setup
from bench.measure import text_payload
from bench.peers import Peer
from bench.procs import Server, rss_kib
from bench.settings import Settings
from bench.wire import Wire


@dataclass(frozen=True)
class Metric:
    """One reported number of a scenario."""

    key: str
    label: str
    higher_is_better: bool
    fmt: str = ",.0f"
    compare: bool = True
    """Report a ratio against the reference peer (or setup)."""
    total: bool = False
    """Aggregate as a sum over rounds (counts such as losses) instead of a median."""


@dataclass(frozen=True)
class Scenario:
    """A named measurement and the metrics it produces."""

    name: str
    title: str
    description: str
    metrics: tuple[Metric, ...]
    max_rounds: int | None = field(default=None, kw_only=True)
    """Run only in the first this many rounds (None: every round)."""
    time_limit: str | None = field(default=None, kw_only=True)
    """Settings field bounding one cell of this scenario (None: ``cell_timeout``)."""
    note: Callable[[dict[str, float]], str] | None = field(default=None, kw_only=True)
    """A line the report prints under the table for each row, from a cell's metrics (None: none)."""

    def rounds(self, s: Settings) -> int:
        """How many rounds this scenario runs in."""
        return min(s.rounds, self.max_rounds or s.rounds)

    def cell_timeout(self, s: Settings) -> float:
        """Upper bound for one cell, in seconds."""
        return float(getattr(s, self.time_limit)) if self.time_limit else s.cell_timeout

    @property
    def primary(self) -> Metric:
        """The headline metric."""
        return self.metrics[0]

    row_label = "peer"
    """What a row of this scenario's table is."""

    def rows(self, peers: list[str]) -> list[str]:
        """Row names of this scenario's table, in order."""
        return peers

    def reference(self, default: str) -> str:
        """The row every other row is compared with."""
        return default


@dataclass(frozen=True)
class PeerScenario(Scenario):
    """Run once per peer against one started peer process."""

    run: Callable[[Server, Peer, Settings], Awaitable[dict[str, float]]]


@dataclass(frozen=True)
class SetupScenario(Scenario):
    """Run once per setup against a deployment the setup starts (hubbub only)."""

    setups: tuple[Setup, ...]
    run: Callable[[Deployment, Settings], Awaitable[dict[str, float]]]

    row_label = "setup"

    def rows(self, peers: list[str]) -> list[str]:
        """The setups' names."""
        return [setup.name for setup in self.setups]

    def reference(self, default: str) -> str:
        """The first setup."""
        return self.setups[0].name


def _helpers(server: Server, peer: Peer) -> list[int]:
    """PIDs of the processes serving the peer (its children), if it has any: their CPU is reported apart."""
    return [child.pid for child in procfs.children(server.pid)] if peer.helpers else []


# --------------------------------------------------------------------- echo


async def echo(server: Server, peer: Peer, s: Settings) -> dict[str, float]:
    """Pipelined echo: round trips/s over a fixed window after a warm-up."""
    helpers = _helpers(server, peer)
    measured = await measure.echo(server.port, [server.pid], s, raw_tcp=peer.raw_tcp, helpers=helpers, wire=peer.wire)
    return measured.metrics


# ------------------------------------------------------------------- fan-out


async def fanout(server: Server, peer: Peer, s: Settings) -> dict[str, float]:
    """Bursts from one publisher to every /fanout client: rate, CPU cost, losses; paced latency."""
    helpers = _helpers(server, peer)
    return (await measure.fanout([server.port], [server.pid], s, helpers=helpers, wire=peer.wire)).metrics


async def fanout_10k(server: Server, peer: Peer, s: Settings) -> dict[str, float]:
    """The fan-out method with ``fanout_10k_clients`` subscribers and smaller bursts."""
    big = replace(
        s,
        fanout_clients=s.fanout_10k_clients,
        fanout_burst=s.fanout_10k_burst,
        fanout_bursts=s.fanout_10k_bursts,
        fanout_paced=s.fanout_10k_paced,
    )
    helpers = _helpers(server, peer)
    return (await measure.fanout([server.port], [server.pid], big, helpers=helpers, wire=peer.wire)).metrics


# ------------------------------------------------------------------- latency


async def latency(server: Server, peer: Peer, s: Settings) -> dict[str, float]:
    """One connection, one message at a time: round-trip p50 and p99."""
    helpers = _helpers(server, peer)
    measured = await measure.latency(
        server.port, [server.pid], s, raw_tcp=peer.raw_tcp, helpers=helpers, wire=peer.wire
    )
    return measured.metrics


# --------------------------------------------------------------- idle memory


async def _warm_echo(server: Server, wire: Wire, s: Settings, n: int = 16) -> None:
    """Exercise /echo once on a few connections so lazy imports are paid up front."""
    tally = loadgen.Tally()
    frame = wire.frame("echo", text_payload(s.echo_size))
    path, join = wire.path("echo"), wire.connect_packet("echo")
    clients = await loadgen.open_many(
        lambda: loadgen.EchoClient(server.port, path, frame, 1, tally, sio_connect=join), server.port, n
    )
    try:
        for c in clients:
            c.running = False
            c.transport.write(frame)
        deadline = time.monotonic() + 5
        while tally.count < n and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if tally.count < n:
            raise RuntimeError(f"/echo warm-up: {tally.count}/{n} echoes came back")
    finally:
        loadgen.close_all(clients)


async def idle(server: Server, peer: Peer, s: Settings) -> dict[str, float]:
    """RSS growth per idle, upgraded /echo connection."""
    await _warm_echo(server, peer.wire, s)
    await asyncio.sleep(0.5)
    before = rss_kib(server.pid)
    t0 = time.perf_counter()
    path, join = peer.wire.path("echo"), peer.wire.connect_packet("echo")
    clients = await loadgen.open_many(
        lambda: loadgen.WsClient(server.port, path, sio_connect=join),
        server.port, s.idle_connections, s.connect_concurrency,
    )  # fmt: skip
    connect_s = time.perf_counter() - t0
    try:
        after = await measure.settled_rss(server.pid, s.idle_settle_max)
    finally:
        loadgen.close_all(clients)
    return {
        "kib_per_connection": (after - before) / len(clients),
        "handshakes_per_s": len(clients) / connect_s,
        "rss_before_mib": before / 1024,
        "rss_after_mib": after / 1024,
    }


# ------------------------------------------------------------------ registry

_SERVER_CPU = Metric("server_cpu_pct", "server CPU %", False, ".0f", compare=False)
_GEN_CPU = Metric("loadgen_cpu_pct", "loadgen CPU %", False, ".0f", compare=False)
_OTHER_CPU = Metric("other_cpu_pct", "other CPU %", False, ".0f", compare=False)
_REDIS_CPU = Metric("helper_cpu_pct", "redis CPU %", False, ".0f", compare=False)
_GC_FILL = Metric("gc_full_fill_max_ms", "longest full GC while filling ms", False, ".1f", compare=False)
_GC_HOLD = Metric("gc_full_hold_max_ms", "longest full GC while holding ms", False, ".1f", compare=False)
"""redis-server's CPU where a peer or setup has one; left out of server and other CPU."""
_FANOUT_RATE = (
    Metric("deliveries_per_s", "deliveries/s", True),
    Metric("cpu_us_per_delivery", "server CPU µs/delivery", False, ".2f"),
    Metric("p50_ms", "publish-to-last p50 ms", False, ",.2f"),
    Metric("p99_ms", "publish-to-last p99 ms", False, ",.2f"),
    Metric("lost", "lost", False, ",.0f", compare=False, total=True),
)
"""The fan-out method's own metrics: rate, CPU per delivery, paced latency, losses."""
_FANOUT_METRICS = (
    *_FANOUT_RATE,
    _SERVER_CPU,
    _REDIS_CPU,
    _GEN_CPU,
    _OTHER_CPU,
)

SCENARIOS: dict[str, Scenario] = {
    sc.name: sc
    for sc in (
        PeerScenario(
            "echo",
            "Echo throughput",
            "{echo_connections} connections x {echo_depth} pipelined {echo_size}-byte text "
            "messages; round trips/s over {echo_window:g} s after {echo_warmup:g} s warm-up. "
            "raw_tcp is a plain TCP echo of the same frames: the load generator's ceiling. hubbub_redis is "
            "hubbub with a private redis-server as its broker; `redis CPU %` is that redis-server's, "
            "counted in neither server nor other CPU.",
            (
                Metric("round_trips_per_s", "round trips/s", True),
                _SERVER_CPU,
                _REDIS_CPU,
                _GEN_CPU,
                _OTHER_CPU,
            ),
            echo,
        ),
        PeerScenario(
            "fanout",
            "Fan-out",
            "{fanout_clients} connections on /fanout, one of which publishes; "
            "{fanout_bursts} timed bursts of {fanout_burst} {fanout_size}-byte messages after "
            "{fanout_warmup_bursts} warm-up burst, each burst drained before the next. "
            "CPU = server utime+stime per delivery. Then, on the same connections, {fanout_paced} "
            "messages published one at a time, each once every client has the previous one: "
            "publish-to-last p50/p99 = ms from the publisher's write to the last client receiving it "
            "(lower is better; CPU columns cover the bursts only). lost = messages some client never got.",
            _FANOUT_METRICS,
            fanout,
        ),
        PeerScenario(
            "fanout_10k",
            "Fan-out to 10,000",
            "The Fan-out method with {fanout_10k_clients} connections on /fanout, one of which publishes: "
            "{fanout_10k_bursts} timed bursts of {fanout_10k_burst} {fanout_size}-byte messages after "
            "{fanout_warmup_bursts} warm-up burst, then {fanout_10k_paced} paced messages for the "
            "publish-to-last-delivery percentiles. One round only; a peer that does not finish within "
            "{fanout_10k_limit:g} s (connecting included) is reported as skipped.",
            _FANOUT_METRICS,
            fanout_10k,
            max_rounds=1,
            time_limit="fanout_10k_limit",
        ),
        PeerScenario(
            "latency",
            "Latency",
            "One /echo connection, one {echo_size}-byte text message at a time: {latency_round_trips} "
            "round trips timed one by one after {latency_warmup} warm-up round trips; percentiles in µs "
            "(lower is better). raw_tcp is the floor: loopback and the load generator alone.",
            (
                Metric("p50_us", "p50 µs", False, ",.1f"),
                Metric("p99_us", "p99 µs", False, ",.1f"),
                _SERVER_CPU,
                _REDIS_CPU,
                _OTHER_CPU,
            ),
            latency,
        ),
        PeerScenario(
            "idle",
            "Idle memory",
            "{idle_connections} idle upgraded /echo connections; server VmRSS growth per "
            "connection once settled (after a small /echo warm-up); handshakes/s while opening "
            "them {connect_concurrency} at a time.",
            (
                Metric("kib_per_connection", "KiB/connection", False, ".1f"),
                Metric("handshakes_per_s", "handshakes/s", True),
            ),
            idle,
        ),
        SetupScenario(
            "cross_node_fanout",
            "Fan-out across nodes (Redis)",
            "The Fan-out method with the {fanout_clients} /fanout connections spread evenly over the nodes "
            "and the publisher on the first node: {fanout_bursts} timed bursts of {fanout_burst} "
            "{fanout_size}-byte messages after {fanout_warmup_bursts} warm-up burst, then {fanout_paced} "
            "paced messages for the publish-to-last-delivery percentiles (ms, the last client on any "
            "node). `1 node` is plain "
            "hubbub (in-memory broker, the Fan-out command); `+ Redis` setups run "
            "`hubbub run examples/echo.py:app --broker redis://127.0.0.1:P/0?namespace=bench` against a "
            'private redis-server started for the cell (`--save "" --appendonly no`). Pinned as Fan-out: '
            "every node and redis-server share the server CPU, the load generator has its own. Server CPU "
            "= utime+stime summed over the node processes per delivery; redis-server's CPU is its own "
            "column (left out of server and other); lost = messages some client never got (must be 0). "
            "`+ Redis Cluster` runs the same nodes with `--broker redis+cluster://...` on a private Redis "
            'Cluster of 3 masters and no replica (`--save "" --appendonly no`, every slot assigned by '
            "`redis-cli --cluster create`), whose publications go through sharded pub/sub (SPUBLISH to the "
            "master of the room's slot); its redis-server CPU column sums the three masters. "
            "Target: 2 nodes at least 0.5x the deliveries/s of 1 node.",
            (
                *_FANOUT_RATE,
                _SERVER_CPU,
                _REDIS_CPU,
                _GEN_CPU,
                _OTHER_CPU,
            ),
            (deploy.SINGLE, deploy.nodes(1), deploy.nodes(2), deploy.cluster_nodes(2)),
            scaleout.cross_node_fanout,
        ),
        SetupScenario(
            "history_fanout",
            "Fan-out with history on vs off",
            "The Fan-out method ({fanout_clients} connections, {fanout_bursts} timed bursts of {fanout_burst} "
            "{fanout_size}-byte messages after {fanout_warmup_bursts} warm-up burst, then {fanout_paced} paced "
            f"messages) against `hubbub run {deploy.HISTORY_APP}`: each message is published to the room of "
            "every client as an envelope through room_broadcast. `off` is that app without history (`:plain`); "
            "the `on` rows keep the room's last 10,000 publications (offsets assigned, appended to the store "
            "before delivery): in memory, in a SQLite file (`--store sqlite:///...`, WAL, one transaction "
            "per loop iteration, delivery after the commit), or in Redis (`--broker`, a private redis-server "
            "keeping nothing on disk; the append script publishes, every member gets it through the "
            "subscription) beside Redis with history off. The handler waits for each publication to be kept "
            "(the acknowledgement) before the connection's next message is handled, so with a durable store "
            "one publisher's publications are delivered one loop iteration each; `relay` rows start each "
            "publish as a task instead, so the publications of an iteration share a commit or a pipeline. "
            "Pinned as Fan-out. Server CPU = utime+stime per "
            "delivery (x {fanout_clients} = per publication); redis-server's CPU is its own column. "
            "Target: memory `on` at most 1.3x the server CPU per delivery of `off`.",
            (
                *_FANOUT_RATE,
                _SERVER_CPU,
                _REDIS_CPU,
                _GEN_CPU,
                _OTHER_CPU,
            ),
            (
                deploy.history("off", "plain"),
                deploy.history("on, memory", "app"),
                deploy.history("on, SQLite", "app", store="sqlite"),
                deploy.history("on, SQLite, relay", "relay", store="sqlite"),
                deploy.history("off, Redis", "plain", redis=True),
                deploy.history("on, Redis", "app", redis=True),
                deploy.history("on, Redis, relay", "relay", redis=True),
            ),
            scaleout.cross_node_fanout,
        ),
        SetupScenario(
            "workers_echo",
            "Echo on --workers (Redis)",
            "The Echo method ({echo_connections} connections x {echo_depth} pipelined {echo_size}-byte "
            "messages, round trips/s over {echo_window:g} s after {echo_warmup:g} s warm-up) against "
            "`hubbub run examples/echo.py:app --broker redis://... --workers N`, a supervisor whose "
            "workers share one port (SO_REUSEPORT), each setup on a private redis-server. Not pinned: "
            "the workers, redis-server and the load generator all share every CPU, so on 2 CPUs the "
            "load generator takes its `loadgen CPU %` from the workers. Server CPU = supervisor + "
            "workers. `fewest conns` is the smallest number of connections one worker held (counted "
            "through /proc) and `least busy worker CPU %` that worker's CPU: both show the load "
            "spread; a worker with no connection fails the cell. Target: 2 workers at least 1.6x 1 worker.",
            (
                Metric("round_trips_per_s", "round trips/s", True),
                _SERVER_CPU,
                Metric("worker_conns_min", "fewest conns", True, ".0f", compare=False),
                Metric("worker_cpu_min_pct", "least busy worker CPU %", True, ".0f", compare=False),
                _GEN_CPU,
                _OTHER_CPU,
            ),
            (deploy.workers(1), deploy.workers(2)),
            scaleout.workers_echo,
        ),
        SetupScenario(
            "hold",
            "Holding idle connections with heartbeats",
            "Target: {hold_connections:,} idle upgraded /echo connections on one hubbub process, "
            f"`hubbub run {hold.APP}` (ping_interval {PING_INTERVAL:g} s, ping_timeout {PING_TIMEOUT:g} s: the "
            "server pings every connection silent that long). The count held is the target capped by the "
            "open-file limits (see the note under the table). The connections come from client processes of at "
            f"most {hold.PER_CLIENT_MAX:,} connections each, each bound to its own source address 127.0.0.2, "
            "127.0.0.3, ..., opening {connect_concurrency} at a time; handshakes/s counts all of them. Once "
            "the server's VmRSS settles they are held {hold_window:g} s: KiB/connection = VmRSS growth (from "
            "before opening to the end of the window) / held; `min pings` = fewest pings one connection got in "
            f"the window (under {hold.MIN_PINGS} fails the cell, and so does any connection closed by the server "
            "or lost); server CPU % over the window is the heartbeat's cost; echo p99/max: one more /echo "
            "connection sending one {echo_size}-byte message at a time, {hold_probe_interval:g} s apart, "
            "through the window (does the ping sweep stall the server?). Longest full GC: the longest generation-2 "
            "collection the server logged (gc.callbacks in bench/apps/hold.py) while the connections opened and "
            "settled, and while they were held. The `gc_freeze_batch=None` row serves `"
            f"{hold.APP_UNFROZEN}`, the same app with hubbub's collector freezing off. Pinned: the server on the "
            "server CPU, the client processes and the probe on the load generator's.",
            (
                Metric("held", "held", True, ",.0f", compare=False),
                Metric("target", "target", True, ",.0f", compare=False),
                Metric("kib_per_connection", "KiB/connection", False, ".1f", compare=False),
                Metric("handshakes_per_s", "handshakes/s", True, ",.0f", compare=False),
                Metric("pings_min", "min pings", True, ".0f", compare=False),
                Metric("server_closes", "closed by server", False, ",.0f", compare=False, total=True),
                _SERVER_CPU,
                Metric("echo_p99_ms", "echo p99 ms", False, ".2f", compare=False),
                Metric("echo_max_ms", "echo max ms", False, ".1f", compare=False),
                _GC_FILL,
                _GC_HOLD,
                Metric("client_cpu_pct", "client CPU %", False, ".0f", compare=False),
                _OTHER_CPU,
            ),
            (hold.SETUP_UNFROZEN, hold.SETUP),
            hold.hold,
            time_limit="hold_limit",
            note=hold.note,
        ),
        SetupScenario(
            "hold_workers",
            "Holding idle connections with heartbeats on --workers",
            "The `hold` measurement with the target ({hold_connections:,}) spread over "
            f"`hubbub run {hold.APP} --workers N --broker redis://...` (a private redis-server), N the fewest "
            f"workers that keep each one at {hold.WORKER_FILL:.0%} of its open-file limit on average: "
            "SO_REUSEPORT spreads the connections by hash. Nothing is pinned: the workers, redis-server, the "
            "client processes and the probe share every CPU. KiB/connection = growth of the workers' summed "
            "VmRSS / held; redis MiB = redis-server's VmRSS at the end (the app keeps nothing per connection "
            "in Redis); server CPU % = the workers' summed CPU over the window, in % of one core.",
            (
                Metric("held", "held", True, ",.0f", compare=False),
                Metric("workers", "workers", True, ".0f", compare=False),
                Metric("kib_per_connection", "KiB/connection", False, ".1f", compare=False),
                Metric("redis_rss_mib", "redis MiB", False, ".1f", compare=False),
                Metric("handshakes_per_s", "handshakes/s", True, ",.0f", compare=False),
                Metric("pings_min", "min pings", True, ".0f", compare=False),
                Metric("server_closes", "closed by server", False, ",.0f", compare=False, total=True),
                _SERVER_CPU,
                Metric("redis_cpu_pct", "redis CPU %", False, ".0f", compare=False),
                Metric("echo_p99_ms", "echo p99 ms", False, ".2f", compare=False),
                Metric("echo_max_ms", "echo max ms", False, ".1f", compare=False),
                _GC_FILL,
                _GC_HOLD,
                Metric("client_cpu_pct", "client CPU %", False, ".0f", compare=False),
                _OTHER_CPU,
            ),
            (hold.WORKERS_SETUP,),
            hold.hold,
            time_limit="hold_limit",
            note=hold.note_workers,
        ),
    )
}
