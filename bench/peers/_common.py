"""Shared command-line handling for peer servers (every peer takes ``--port``)."""

from __future__ import annotations

import argparse

HOST = "127.0.0.1"
"""Peers listen on loopback only."""

BACKLOG = 1024
"""Listen backlog, large enough for the harness's bursts of new connections."""


def parse_port(description: str) -> int:
    """Parse ``--port`` from the command line and return it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    return int(parser.parse_args().port)
