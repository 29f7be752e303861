"""Hostile and stalled clients on raw sockets, and the memory of a server process.

Blocking sockets driven from threads, so a flood goes as fast as the kernel takes it
and the test's event loop stays free.
"""

from __future__ import annotations

import base64
import os
import select
import socket
import threading
import time
from pathlib import Path


def rss(pid: int) -> int:
    """Resident set size of process `pid`, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A final client frame (masked, as RFC 6455 requires)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = bytes([0x80 | opcode, 0x80 | length])
    elif length < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def open_websocket(
    port: int, path: str, *, subprotocol: str | None = None, rcvbuf: int | None = None
) -> tuple[socket.socket, bytes]:
    """A blocking socket that completed the handshake; returns it and the bytes read past the 101."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    request = (
        f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        f"sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n"
        + (f"sec-websocket-protocol: {subprotocol}\r\n" if subprotocol else "")
        + "\r\n"
    )
    sock.sendall(request.encode("latin-1"))
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        assert chunk, "closed during the handshake"
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, rest


def flood(sock: socket.socket, block: bytes, seconds: float) -> int:
    """Send `block` again and again for `seconds` (never blocking longer than the deadline);
    return how many whole blocks the kernel took."""
    deadline = time.monotonic() + seconds
    sent_blocks = 0
    view = memoryview(block)
    offset = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return sent_blocks
        _, writable, _ = select.select([], [sock], [], min(left, 0.2))
        if not writable:
            continue
        try:
            offset += sock.send(view[offset:], socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        except OSError:
            return sent_blocks
        if offset == len(block):
            offset = 0
            sent_blocks += 1


class Drain(threading.Thread):
    """Reads a socket to its end in the background, keeping only a count and the last bytes."""

    def __init__(self, sock: socket.socket, keep: int = 1 << 16) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.keep = keep
        self.received = 0
        self.tail = b""
        self.closed = threading.Event()

    def run(self) -> None:
        self.sock.settimeout(None)
        try:
            while True:
                chunk = self.sock.recv(1 << 18)
                if not chunk:
                    break
                self.received += len(chunk)
                self.tail = (self.tail + chunk)[-self.keep :]
        except OSError:
            pass
        self.closed.set()

    def saw(self, marker: bytes) -> bool:
        """Whether `marker` is among the last bytes read."""
        return marker in self.tail
