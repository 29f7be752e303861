"""The hold scenario's client process (idle /echo connections, their pings counted) and the harness's end of it.

Started by the harness (:mod:`bench.hold`), pinned to the load-generator CPU::

    python -m bench.holdclient --port P --count N --source 127.0.0.X [--concurrency C] [--max-seconds T]

It reads one command per line on stdin and answers each with one JSON line on stdout:

- ``open``: open ``count`` upgraded connections to 127.0.0.1:P/echo, each bound to
  ``source``; answer ``{"opened": n, "seconds": s, "nofile": limit}``.
- ``reset``: zero every connection's ping count; answer ``{"reset": n}``.
- ``report``: ``{"open": n, "pings": {"count": connections, ...}, "server_closes": n,
  "close_codes": {"code": connections, ...}, "dropped": n}``: connections still open, how many
  pings each got since the last reset, closed by a close frame from the server (and its codes),
  lost without any close frame.
- ``close``: close every connection (close frame, then TCP), answer ``{"closed": n}`` and exit.

A failure is answered with ``{"error": "..."}``. The process closes everything and exits by
itself when stdin ends (the harness went away) or after ``--max-seconds``. :class:`Loader`
is the harness's handle on one such process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import orjson
import uvloop

from bench import loadgen, wsframe
from bench.procs import raise_nofile_limit

PATH = "/echo"
MIN_CONNECTS_PER_S = 40
"""Slowest a client process may open its connections: all the client processes connect at once,
and with ``--workers`` they share the CPUs with the server."""


def open_timeout(count: int) -> float:
    """Seconds one client process gets to open ``count`` connections."""
    return 10 + count / MIN_CONNECTS_PER_S


class HeldClient(loadgen.WsClient):
    """An idle connection that counts the pings it answers and notes how it ended."""

    def __init__(self, port: int) -> None:
        super().__init__(port, PATH)
        self.pings = 0
        self.close_code: int | None = None
        """Code of the server's close frame, if the server closed the connection."""
        self.dropped = False
        """Lost without a close frame from either side."""

    def on_control(self, opcode: int, payload: bytes) -> None:
        """Count pings; note a close started by the server."""
        if opcode == wsframe.OP_PING:
            self.pings += 1
        elif opcode == wsframe.OP_CLOSE and not self.closed:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005

    def connection_lost(self, exc: Exception | None) -> None:
        """Note a connection that ended without any close frame."""
        if not self.closed:
            self.dropped = True
        super().connection_lost(exc)


def _say(reply: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(reply) + b"\n")
    sys.stdout.buffer.flush()


async def _open(held: list[HeldClient], args: argparse.Namespace) -> dict[str, Any]:
    if held:
        return {"error": "already open"}
    made: list[HeldClient] = []

    def factory() -> HeldClient:
        made.append(HeldClient(args.port))
        return made[-1]

    t0 = time.perf_counter()
    try:
        held += await loadgen.open_many(
            factory, args.port, args.count, args.concurrency, open_timeout(args.count), local_addr=(args.source, 0)
        )
    except Exception as e:  # reported to the harness, which fails the cell
        upgraded = sum(c.counter is not None for c in made)
        why = f"{type(e).__name__}: {e}".rstrip(": ")
        return {"error": f"{upgraded} of {args.count} connections from {args.source} upgraded, then {why}"}
    seconds = time.perf_counter() - t0
    return {"opened": len(held), "seconds": seconds, "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}


def _report(held: list[HeldClient]) -> dict[str, Any]:
    still = [c for c in held if not c.closed]
    closed_by_server = [c.close_code for c in held if c.close_code is not None]
    return {
        "open": len(still),
        "pings": {str(n): k for n, k in sorted(Counter(c.pings for c in still).items())},
        "server_closes": len(closed_by_server),
        "close_codes": {str(code): k for code, k in sorted(Counter(closed_by_server).items())},
        "dropped": sum(c.dropped for c in held),
    }


async def _answer(command: str, held: list[HeldClient], args: argparse.Namespace) -> dict[str, Any]:
    if command == "open":
        return await _open(held, args)
    if command == "reset":
        for c in held:
            c.pings = 0
        return {"reset": len(held)}
    if command == "report":
        return _report(held)
    return {"error": f"unknown command {command!r}"}


async def _stdin() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def serve(args: argparse.Namespace) -> int:
    """Answer the harness's commands until ``close``, the end of stdin, or the time bound."""
    held: list[HeldClient] = []
    commands = await _stdin()
    try:
        async with asyncio.timeout(args.max_seconds):
            while line := await commands.readline():
                command = line.decode().strip()
                if command == "close":
                    await _close(held)
                    _say({"closed": len(held)})
                    return 0
                _say(await _answer(command, held, args))
    except TimeoutError:
        print(f"holdclient: still running after {args.max_seconds:g} s; closing and exiting", file=sys.stderr)
        return 3
    finally:
        await _close(held)
    return 0


async def _close(held: list[HeldClient]) -> None:
    """Close every connection still open and give the close frames and FINs time to go out."""
    still = [c for c in held if not c.closed]
    if still:
        loadgen.close_all(still)
        await asyncio.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve; return the exit status."""
    p = argparse.ArgumentParser(prog="python -m bench.holdclient", description=__doc__.split("\n", 1)[0])
    p.add_argument("--port", type=int, required=True, help="server port on 127.0.0.1")
    p.add_argument("--count", type=int, required=True, help="connections to hold")
    p.add_argument("--source", required=True, help="local address every connection is bound to, e.g. 127.0.0.2")
    p.add_argument("--concurrency", type=int, default=64, help="connection attempts in flight while opening")
    p.add_argument("--max-seconds", type=float, default=300.0, help="exit by itself after this long")
    args = p.parse_args(argv)
    raise_nofile_limit()
    return int(uvloop.run(serve(args)))


# ------------------------------------------------------- the harness's end


class Loader:
    """The harness's end of one :mod:`bench.holdclient` process: commands down stdin, JSON replies up stdout."""

    def __init__(self, proc: subprocess.Popen[bytes], address: str) -> None:
        self.proc = proc
        self.address = address
        self._buffer = b""
        self._replies: asyncio.Queue[dict[str, Any]] | None = None

    @property
    def pid(self) -> int:
        """The client process's id."""
        return self.proc.pid

    def _stdout(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def attach(self) -> None:
        """Read replies on the running event loop (the pipe stays owned by ``proc``)."""
        self._replies = asyncio.Queue()
        os.set_blocking(self._stdout(), False)
        asyncio.get_running_loop().add_reader(self._stdout(), self._readable)

    def detach(self) -> None:
        """Stop reading replies."""
        if self._replies is not None and self.proc.stdout is not None and not self.proc.stdout.closed:
            asyncio.get_running_loop().remove_reader(self._stdout())
        self._replies = None

    def _readable(self) -> None:
        assert self._replies is not None
        try:
            data = os.read(self._stdout(), 1 << 16)
        except BlockingIOError:
            return
        if not data:
            asyncio.get_running_loop().remove_reader(self._stdout())
            self._replies.put_nowait({"error": "exited"})
            return
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        for line in lines:
            self._replies.put_nowait(orjson.loads(line))

    async def ask(self, command: str, timeout: float) -> dict[str, Any]:
        """Send ``command``, return its reply; RuntimeError on an error reply, a closed pipe or no reply in time."""
        assert self._replies is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(command.encode() + b"\n")
            self.proc.stdin.flush()
            reply = await asyncio.wait_for(self._replies.get(), timeout)
        except (BrokenPipeError, TimeoutError) as e:
            why = f"no reply within {timeout:g} s" if isinstance(e, TimeoutError) else "exited"
            raise RuntimeError(f"client {self.address}: {command}: {why}") from None
        if "error" in reply:
            raise RuntimeError(f"client {self.address}: {command}: {reply['error']}")
        return reply


async def ask_all(loaders: list[Loader], command: str, timeout: float) -> list[dict[str, Any]]:
    """``command`` to every client process at once; their replies in order."""
    return list(await asyncio.gather(*(loader.ask(command, timeout) for loader in loaders)))


if __name__ == "__main__":
    sys.exit(main())
