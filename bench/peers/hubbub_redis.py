"""Peer: hubbub on the Redis engine, serving the same app as the ``hubbub`` peer.

``hubbub run examples/echo.py:app --broker redis://127.0.0.1:P/0?namespace=bench``,
run in this very process so that the peer's PID is the hubbub server's. First
this process starts a private redis-server as its child: on a free port, bound
to 127.0.0.1, nothing kept on disk (``--save "" --appendonly no``, a temporary
directory), killed by the kernel if this process dies. Once it answers PING,
its directory is removed (nothing is ever written there, and a peer killed
after the harness's stop grace, as when 10,000 connections are still leaving
Redis, then leaves nothing behind) and hubbub runs here on uvloop; after
hubbub's graceful shutdown (SIGTERM), redis-server is stopped by PID.
redis-server is this process's only child, which is how the harness finds it
to report its CPU apart from the server's.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from bench.deploy import APP, broker_url, redis_command
from bench.peers._common import HOST, parse_port
from bench.procs import die_with_parent, free_port
from hubbub import cli

REDIS_START_TIMEOUT = 10.0
"""Seconds redis-server gets to answer PING."""
REDIS_STOP_GRACE = 5.0
"""Seconds redis-server gets to exit on SIGTERM before SIGKILL."""


def answers_ping(port: int) -> bool:
    """Whether a Redis on 127.0.0.1:``port`` answers an inline PING with PONG right now."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start redis-server in ``workdir`` on a free port; return it and its port once it answers PING."""
    port = free_port()
    proc = subprocess.Popen(redis_command(port, workdir), stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    while not answers_ping(port):
        if proc.poll() is not None:
            raise SystemExit(f"redis-server exited with code {proc.returncode} before answering PING")
        if time.monotonic() > deadline:
            stop_redis(proc)
            raise SystemExit(f"redis-server did not answer PING on port {port} within {REDIS_START_TIMEOUT:g} s")
        time.sleep(0.05)
    return proc, port


def stop_redis(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM redis-server, SIGKILL it after :data:`REDIS_STOP_GRACE` s; reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(REDIS_STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _exit_on_signal(signum: int, frame: object) -> None:
    """Until hubbub installs its own handler, SIGTERM unwinds through the cleanup."""
    sys.exit(128 + signum)


def main(port: int) -> None:
    """Start redis-server, serve hubbub on ``port`` with it as broker until SIGTERM, then clean up."""
    signal.signal(signal.SIGTERM, _exit_on_signal)
    workdir = tempfile.mkdtemp(prefix="bench-hubbub-redis-")
    redis: subprocess.Popen[bytes] | None = None
    try:
        redis, redis_port = start_redis(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        args = ["run", APP, "--host", HOST, "--port", str(port), "--broker", broker_url(redis_port)]
        cli.main([*args, "--log-level", "warning"], prog_name="hubbub")
    finally:
        if redis is not None:
            stop_redis(redis)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(parse_port(__doc__ or ""))
