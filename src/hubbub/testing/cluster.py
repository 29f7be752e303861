"""Real multi-process clusters for tests: a private redis-server and N hubbub nodes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_taken(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on `port` (a fresh server could not bind it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _http_status(port: int, path: str) -> int | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n".encode())
            head = sock.recv(64)
    except OSError:
        return None
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


class RedisServer:
    """A redis-server of its own, on a free port, keeping nothing on disk (unless `appendonly`)."""

    def __init__(self, port: int | None = None, executable: str = "redis-server", *, appendonly: bool = False) -> None:
        self.appendonly = appendonly
        """Keep an append-only file (fsync on every write), so a restart keeps the data."""
        found = shutil.which(executable)
        if found is None:
            raise FileNotFoundError(f"{executable} is not installed")
        self.executable = found
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.mkdtemp(prefix="hubbub-redis-")

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0"""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start it and wait until it answers PING; RuntimeError if the port is taken or it exits."""
        if _port_taken(self.port):
            raise RuntimeError(f"port {self.port} is taken: cannot start redis-server on it")
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "always",
                "--dir",
                self._dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process = self.process
        _wait(lambda: process.poll() is not None or self._answers(), timeout, f"redis-server on port {self.port}")
        if process.poll() is not None:
            self.process = None
            raise RuntimeError(f"redis-server on port {self.port} exited with status {process.returncode}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop it (SIGTERM) and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        """Kill it (SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop it, stay down `down_for` seconds, start it again on the same port (empty unless `appendonly`)."""
        self.stop()
        if down_for:
            time.sleep(down_for)
        self.start()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


class Node:
    """One hubbub server process of a `Cluster`."""

    def __init__(self, command: list[str], port: int, env: Mapping[str, str], cwd: str | None) -> None:
        self.port = port
        self._command = command
        self._env = dict(env)
        self._cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, path: str = "/") -> str:
        """ws://127.0.0.1:PORT/path"""
        return f"ws://127.0.0.1:{self.port}{path}"

    def http_url(self, path: str = "/") -> str:
        """http://127.0.0.1:PORT/path"""
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Start the process and wait until /readyz answers 200."""
        self.process = subprocess.Popen(self._command, env=self._env, cwd=self._cwd)
        _wait(lambda: self._ready_or_dead(), timeout, f"node on port {self.port} to be ready")
        if not self.alive:
            raise RuntimeError(f"node on port {self.port} exited with {self.process.returncode}")

    def _ready_or_dead(self) -> bool:
        return not self.alive or _http_status(self.port, "/readyz") == 200

    def ready(self) -> bool:
        """Whether /readyz answers 200 now."""
        return _http_status(self.port, "/readyz") == 200

    def kill(self) -> None:
        """SIGKILL: the node vanishes without a goodbye."""
        if self.alive:
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM: graceful shutdown; returns the exit status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


class Cluster:
    """N nodes of an app (`module:attr` or `path/file.py:attr`) sharing one Redis.

    with RedisServer() as redis, Cluster("myapp:app", redis.url, nodes=2) as cluster:
        ... connect to cluster.nodes[0].url("/ws") and cluster.nodes[1].url("/ws") ...
        cluster.nodes[1].kill()
    """

    def __init__(
        self,
        target: str,
        redis_url: str,
        nodes: int = 2,
        *,
        env: Mapping[str, str] | None = None,
        args: Iterable[str] = (),
        cwd: str | Path | None = None,
        log_level: str = "warning",
    ) -> None:
        self.target = target
        self.redis_url = redis_url
        merged = {**os.environ, **(env or {})}
        self.nodes: list[Node] = []
        for _ in range(nodes):
            port = free_port()
            command = [
                sys.executable,
                "-m",
                "hubbub",
                "run",
                target,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--broker",
                redis_url,
                "--log-level",
                log_level,
                *args,
            ]
            self.nodes.append(Node(command, port, merged, str(cwd) if cwd is not None else None))

    def start(self) -> None:
        """Start every node and wait until each is ready."""
        for node in self.nodes:
            node.start()

    def stop(self) -> None:
        """Stop every node that still runs (SIGTERM, then SIGKILL after a timeout)."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
