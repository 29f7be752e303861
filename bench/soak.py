"""A bounded churn soak: memory, file descriptors and tasks of one server over time.

For each configuration (compression off / shared / dedicated, memory or Redis
broker) it starts `hubbub run bench/apps/soak.py:app` on 127.0.0.1 (and, for
Redis, a private redis-server on a free port), then runs churn workers that
connect to a room, broadcast a few messages, read, and leave (half with a clean
close, half by dropping the socket), next to a set of long-held listeners.
Every `--sample` seconds it records the server's RSS, open fds, asyncio tasks
and WebSocket count. Everything stops by itself after `--minutes` per config.

    python -m bench.soak --minutes 8 --configs off,shared,dedicated,redis-shared --out soak.json

Prints one line per sample and a summary per config: first sample after warm-up,
last sample, and the largest value after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import connect

from hubbub.testing.cluster import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
ROOMS = 20
CONFIGS = {
    "off": ("disabled", False),
    "shared": ("shared", False),
    "dedicated": ("dedicated", False),
    "redis-off": ("disabled", True),
    "redis-shared": ("shared", True),
}


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fd_count(pid: int) -> int:
    """Open file descriptors of a process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def server_stats(port: int) -> dict[str, Any]:
    """The app's own counts (GET /_soak/stats)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_soak/stats", timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


class Churn:
    """Churn workers and held listeners against one server; counts what they did."""

    def __init__(self, port: int, compress: bool) -> None:
        self.port = port
        self.compression = "deflate" if compress else None
        self.connects = 0
        self.clean = 0
        self.abrupt = 0
        self.refused = 0
        self.received = 0
        self.stop = asyncio.Event()

    def _url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/soak/r{random.randrange(ROOMS)}"

    async def listener(self) -> None:
        """Hold one connection and read the room's broadcasts until stopped (reconnect if dropped)."""
        while not self.stop.is_set():
            try:
                async with connect(self._url(), compression=self.compression, max_size=None) as ws:
                    while not self.stop.is_set():
                        try:
                            await asyncio.wait_for(ws.recv(), 1.0)
                            self.received += 1
                        except TimeoutError:
                            continue
            except (OSError, websockets.WebSocketException):
                await asyncio.sleep(0.5)

    async def worker(self) -> None:
        """Connect, send a few broadcasts (some large enough to compress), read, leave."""
        rng = random.Random()
        while not self.stop.is_set():
            try:
                ws = await connect(self._url(), compression=self.compression, max_size=None, open_timeout=10)
            except (OSError, TimeoutError, websockets.WebSocketException):
                self.refused += 1
                await asyncio.sleep(0.2)
                continue
            self.connects += 1
            try:
                for _ in range(rng.randrange(1, 4)):
                    size = rng.choice((16, 200, 2000))
                    await ws.send(("m" * size) if rng.random() < 0.5 else os.urandom(size // 2).hex())
                    await asyncio.wait_for(ws.recv(), 5.0)
                    self.received += 1
            except (OSError, TimeoutError, websockets.WebSocketException):
                pass
            if rng.random() < 0.5:
                await ws.close()
                self.clean += 1
            else:
                ws.transport.abort()
                self.abrupt += 1
            await asyncio.sleep(rng.uniform(0.0, 0.05))


async def run_config(name: str, minutes: float, sample: float, workers: int, listeners: int) -> dict[str, Any]:
    compression, use_redis = CONFIGS[name]
    redis = RedisServer() if use_redis else None
    if redis is not None:
        redis.start()
    port = free_port()
    cmd = [sys.executable, "-m", "hubbub", "run", "bench/apps/soak.py:app", "--port", str(port)]
    cmd += ["--log-level", "warning", "--compression", compression]
    if redis is not None:
        cmd += ["--broker", redis.url]
    env = {**os.environ, "SOAK_TRACEMALLOC": os.environ.get("SOAK_TRACEMALLOC", "0")}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    samples: list[dict[str, Any]] = []
    churn = Churn(port, compression != "disabled")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                server_stats(port)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"server for {name} did not start") from None
                await asyncio.sleep(0.2)
        tasks = [asyncio.create_task(churn.listener()) for _ in range(listeners)]
        tasks += [asyncio.create_task(churn.worker()) for _ in range(workers)]
        started = time.monotonic()
        end = started + minutes * 60
        while time.monotonic() < end and proc.poll() is None:
            await asyncio.sleep(min(sample, max(0.0, end - time.monotonic())))
            stats = await asyncio.to_thread(server_stats, port)
            row = {
                "t": round(time.monotonic() - started, 1),
                "rss_mb": round(rss_mb(proc.pid), 2),
                "fds": fd_count(proc.pid),
                "connects": churn.connects,
                "clean": churn.clean,
                "abrupt": churn.abrupt,
                "refused": churn.refused,
                **{k: v for k, v in stats.items() if k != "top_growth"},
            }
            samples.append(row)
            print(name, json.dumps(row), flush=True)
            if "top_growth" in stats:
                print(name, "growth", json.dumps(stats["top_growth"]), flush=True)
        churn.stop.set()
        await asyncio.wait(tasks, timeout=15)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        crashed = proc.poll() is not None
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if redis is not None:
            redis.stop()
    warm = [s for s in samples if s["t"] >= min(120.0, minutes * 60 / 4)]
    summary = {
        "config": name,
        "seconds": samples[-1]["t"] if samples else 0,
        "connects": churn.connects,
        "clean_closes": churn.clean,
        "abrupt_closes": churn.abrupt,
        "refused": churn.refused,
        "received": churn.received,
        "server_crashed": crashed,
        "after_warmup": warm[0] if warm else None,
        "last": samples[-1] if samples else None,
        "max_rss_after_warmup": max((s["rss_mb"] for s in warm), default=None),
        "max_fds_after_warmup": max((s["fds"] for s in warm), default=None),
        "max_tasks_after_warmup": max((s["tasks"] for s in warm), default=None),
    }
    print(name, "summary", json.dumps(summary), flush=True)
    return {"summary": summary, "samples": samples}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=8.0, help="per configuration")
    parser.add_argument("--configs", default="off,shared,dedicated,redis-shared")
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--workers", type=int, default=40, help="churning clients at once")
    parser.add_argument("--listeners", type=int, default=40, help="clients held for the whole run")
    parser.add_argument("--out", type=Path, default=None, help="write every sample as JSON here")
    args = parser.parse_args()
    results = {}
    for name in args.configs.split(","):
        results[name] = await run_config(name, args.minutes, args.sample, args.workers, args.listeners)
        if args.out is not None:  # after each configuration: a run cut short keeps what it measured
            args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
