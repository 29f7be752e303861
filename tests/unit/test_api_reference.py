"""docs/api.md is generated from the docstrings, and is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_api_reference_is_current() -> None:
    """`scripts/api_reference.py --check` passes: the committed reference says what the code says."""
    done = subprocess.run(
        [sys.executable, "scripts/api_reference.py", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_every_public_name_is_documented() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    assert "(no docstring)" not in text
    for name in ("App", "StreamingResponse", "HTTPError", "APIKeyAuth", "load_folder", "serve_app", "connect"):
        assert f"### `{name}" in text
