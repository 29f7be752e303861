"""A private Redis Cluster for tests and benchmarks: N masters and their replicas on 127.0.0.1.

    with RedisClusterServer(masters=3, replicas=1) as cluster:
        broker = RedisBroker(cluster.url)               # redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...
        ...
        cluster.kill_master(cluster.master_of("room-key"))  # SIGKILL; waits for a replica's promotion

Plain importable class (no pytest). It starts the system `redis-server` in cluster mode, each
node in a directory of its own, creates the cluster with `redis-cli --cluster create` and waits
until every slot is served. It only ever signals the processes it started.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from hubbub.testing.cluster import _port_taken, _wait, free_port

SLOTS = 16384


def command(port: int, *args: str, timeout: float = 2.0) -> str | int:
    """Send one command to the Redis on 127.0.0.1:`port`; the reply as text or an int (errors raise)."""
    frame = f"*{len(args)}\r\n" + "".join(f"${len(arg.encode())}\r\n{arg}\r\n" for arg in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(frame.encode())
        reader = sock.makefile("rb")
        line = reader.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:].decode()
        if kind == b"+":
            return rest
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return "" if size < 0 else reader.read(size + 2)[:size].decode()
        if kind == b"-":
            raise RuntimeError(f"redis on port {port}: {rest}")
        raise RuntimeError(f"redis on port {port}: unexpected reply {line[:40]!r}")


class ClusterNodeProcess:
    """One redis-server of a `RedisClusterServer` (a master or a replica: roles change on failover)."""

    def __init__(
        self, executable: str, port: int, bus_port: int, directory: Path, node_timeout_ms: int, appendonly: bool
    ) -> None:
        self.port = port
        self.bus_port = bus_port
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self._command = [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            str(bus_port),
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(node_timeout_ms),
            "--cluster-replica-validity-factor",
            "0",  # a replica is always allowed to take over, however long its link was down
            "--save",
            "",
            "--appendonly",
            "yes" if appendonly else "no",
            "--appendfsync",
            "always",
            "--dir",
            str(directory),
        ]

    @property
    def address(self) -> str:
        """127.0.0.1:PORT"""
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        """Whether its process runs."""
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start it (with its cluster configuration, if it had one) and wait until it answers PING."""
        for port in (self.port, self.bus_port):
            if _port_taken(port):
                raise RuntimeError(f"port {port} is taken: cannot start redis-server on it")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        process = self.process
        _wait(lambda: process.poll() is not None or self._answers(), timeout, f"redis-server on port {self.port}")
        if process.poll() is not None:
            self.process = None
            raise RuntimeError(f"redis-server on port {self.port} exited with status {process.returncode}")

    def _answers(self) -> bool:
        try:
            return command(self.port, "PING", timeout=0.5) == "PONG"
        except (OSError, RuntimeError):
            return False

    def info(self) -> dict[str, str]:
        """CLUSTER INFO as a dict."""
        reply = str(command(self.port, "CLUSTER", "INFO"))
        return dict(line.split(":", 1) for line in reply.splitlines() if ":" in line)

    def kill(self) -> None:
        """SIGKILL."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        """SIGTERM (SIGCONT first, in case it was paused), then wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


class RedisClusterServer:
    """A Redis Cluster of its own: `masters` masters with `replicas` replicas each, on free ports.

    `url` is `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...` (every node is a seed), the form
    `RedisBroker`, the Redis stores and `Emitter` accept. `node_timeout_ms` is Redis's
    `cluster-node-timeout`: a killed master's replica takes over about one to two of it later.
    """

    def __init__(
        self,
        masters: int = 3,
        replicas: int = 1,
        *,
        node_timeout_ms: int = 1000,
        appendonly: bool = False,
        executable: str = "redis-server",
        cli: str = "redis-cli",
    ) -> None:
        if masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters")
        found, found_cli = shutil.which(executable), shutil.which(cli)
        if found is None or found_cli is None:
            raise FileNotFoundError(f"{executable} and {cli} must be installed")
        self.cli = found_cli
        self.masters_wanted = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self._dir = Path(tempfile.mkdtemp(prefix="hubbub-redis-cluster-"))
        ports: list[int] = []
        while len(ports) < 2 * masters * (1 + replicas):  # a client port and a cluster bus port each
            port = free_port()
            if port not in ports:
                ports.append(port)
        self.nodes = [
            ClusterNodeProcess(found, port, bus, self._dir / str(port), node_timeout_ms, appendonly)
            for port, bus in zip(ports[0::2], ports[1::2], strict=True)
        ]
        """Every redis-server of the cluster, in the order they were created (masters first)."""

    @property
    def url(self) -> str:
        """redis+cluster://127.0.0.1:P1,127.0.0.1:P2,... (all nodes are seeds)."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def start(self, timeout: float = 30.0) -> None:
        """Start every node, create the cluster, and wait until every slot is served and replicas are in sync."""
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(node.address for node in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
        )
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until every live node says cluster_state:ok with all slots served, each master has its
        replicas and every replica's link to its master is up."""
        _wait(self._healthy, timeout, "the Redis cluster to be healthy")

    def _healthy(self) -> bool:
        try:
            for node in self.live_nodes():
                info = node.info()
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(SLOTS):
                    return False
            table = self._table()
            masters = [entry for entry in table if entry["role"] == "master" and entry["slots"]]
            wanted = self.replicas if len(self.live_nodes()) == len(self.nodes) else 0
            if len(masters) != self.masters_wanted:
                return False
            for master in masters:
                replicas = [e for e in table if e["role"] == "slave" and e["master"] == master["id"] and e["up"]]
                if len(replicas) < wanted:
                    return False
            return all(self._link_up(node) for node in self.live_nodes() if node.port not in self._master_ports())
        except (OSError, RuntimeError):
            return False

    def _link_up(self, node: ClusterNodeProcess) -> bool:
        return "master_link_status:up" in str(command(node.port, "INFO", "replication"))

    def _table(self) -> list[dict[str, object]]:
        """CLUSTER NODES, as seen by a live node."""
        reply = ""
        for node in self.live_nodes():
            with contextlib.suppress(OSError, RuntimeError):
                reply = str(command(node.port, "CLUSTER", "NODES"))
                break
        table = []
        for line in reply.splitlines():
            fields = line.split()
            flags = fields[2].split(",")
            table.append(
                {
                    "id": fields[0],
                    "port": int(fields[1].split("@")[0].rsplit(":", 1)[1]),
                    "role": "master" if "master" in flags else "slave",
                    "up": "fail" not in flags and "fail?" not in flags and fields[7] == "connected",
                    "master": fields[3],
                    "slots": fields[8:],
                }
            )
        return table

    def _master_ports(self) -> set[int]:
        return {int(str(e["port"])) for e in self._table() if e["role"] == "master" and e["slots"] and e["up"]}

    def live_nodes(self) -> list[ClusterNodeProcess]:
        """The nodes whose process runs."""
        return [node for node in self.nodes if node.alive]

    def masters(self) -> list[ClusterNodeProcess]:
        """The live nodes that serve slots now."""
        ports = self._master_ports()
        return [node for node in self.live_nodes() if node.port in ports]

    def slot_of(self, key: str) -> int:
        """The hash slot of `key` (CLUSTER KEYSLOT; a hash tag counts as Redis counts it)."""
        return int(command(self.live_nodes()[0].port, "CLUSTER", "KEYSLOT", key))

    def master_of(self, key: str) -> ClusterNodeProcess:
        """The live master serving the slot of `key` now."""
        slot = self.slot_of(key)
        for entry in self._table():
            if entry["role"] != "master" or not entry["up"]:
                continue
            for span in entry["slots"]:  # type: ignore[attr-defined]
                if span.startswith("["):
                    continue  # a slot being migrated
                low, _, high = span.partition("-")
                if int(low) <= slot <= int(high or low):
                    return self._node(int(str(entry["port"])))
        raise LookupError(f"no live master serves slot {slot}")

    def _node(self, port: int) -> ClusterNodeProcess:
        return next(node for node in self.nodes if node.port == port)

    def wait_replicated(self, node: ClusterNodeProcess, timeout: float = 10.0) -> None:
        """Wait until every replica of master `node` acknowledged all it was sent so far (replication is
        asynchronous: what a replica has not received when its master dies is lost by the failover)."""

        def caught_up() -> bool:
            info = dict(
                line.split(":", 1)
                for line in str(command(node.port, "INFO", "replication")).splitlines()
                if ":" in line
            )
            offset = info.get("master_repl_offset")
            replicas = [value for key, value in info.items() if key.startswith("slave") and key[5:].isdigit()]
            return bool(replicas) and all(f"offset={offset}," in value for value in replicas)

        _wait(caught_up, timeout, f"the replicas of {node.address} to catch up")

    def kill_master(self, node: ClusterNodeProcess, *, wait: bool = True, timeout: float = 30.0) -> None:
        """SIGKILL a master; with `wait`, return once a replica serves its slots (cluster_state:ok everywhere)."""
        if node.port not in self._master_ports():
            raise ValueError(f"{node.address} is not a master now")
        node.kill()
        if wait:
            self.wait_failover(timeout)

    def wait_failover(self, timeout: float = 30.0) -> None:
        """Wait until the live nodes serve every slot again (a replica was promoted)."""

        def served() -> bool:
            try:
                return (
                    all(
                        node.info().get("cluster_state") == "ok" and node.info().get("cluster_slots_ok") == str(SLOTS)
                        for node in self.live_nodes()
                    )
                    and len(self.masters()) == self.masters_wanted
                )
            except (OSError, RuntimeError):
                return False

        _wait(served, timeout, "a replica to take over the killed master's slots")

    def restart(self, node: ClusterNodeProcess, timeout: float = 30.0) -> None:
        """Start a killed node again; it rejoins (as a replica of whoever serves its former slots)."""
        node.start()
        self.wait_healthy(timeout)

    def stop(self) -> None:
        """Stop every node and remove their directories."""
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisClusterServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["ClusterNodeProcess", "RedisClusterServer", "command"]
