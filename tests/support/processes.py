"""Helpers for tests that run a hubbub server as a child process."""

from __future__ import annotations

import asyncio
import socket
import subprocess


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_accepting(proc: subprocess.Popen[bytes], port: int, timeout: float = 15.0) -> None:
    """Wait until the child accepts TCP connections on `port`."""
    async with asyncio.timeout(timeout):
        while True:
            assert proc.poll() is None, f"server exited early with {proc.returncode}"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
