"""What `hubbub run TARGET` does with the targets a new user types: folders, `socket`, broken app files."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hubbub import ConnectionClosed
from hubbub.client import connect
from tests.support.processes import free_port, wait_accepting

ROOT = Path(__file__).resolve().parents[2]


def run_to_exit(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m hubbub ARGS` in `cwd`, expected to stop on its own (an error)."""
    return subprocess.run([sys.executable, "-m", "hubbub", *args], cwd=cwd, capture_output=True, text=True, timeout=30)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of examples/handlers, as a user's project folder."""
    target = tmp_path / "project"
    shutil.copytree(ROOT / "examples" / "handlers", target)
    return target


@pytest.mark.parametrize("target", [".", "socket", "socket/", "api", "../project"])
async def test_folder_targets_serve_the_handler_folder(project: Path, target: str, tmp_path: Path) -> None:
    """`hubbub run .`, `socket`, `socket/` (not the standard library's socket module), `api` all serve the folder."""
    port = free_port()
    with (tmp_path / "err.log").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hubbub", "run", target, "--port", str(port)],
            cwd=project,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        await wait_accepting(proc, port)
        async with await connect(f"ws://127.0.0.1:{port}/upper?token=bad") as ws:  # the route exists: auth closes it
            with pytest.raises(ConnectionClosed):
                await ws.recv(timeout=5)
            assert ws.close_code == 4002
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = json.dumps({"name": "ada"}).encode()
        writer.write(
            b"POST /login HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)
        )
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200")
        token = json.loads(answer.partition(b"\r\n\r\n")[2])["token"]
        async with await connect(f"ws://127.0.0.1:{port}/upper?token={token}") as ws:
            await ws.send("quiet")
            assert await ws.recv() == "QUIET"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_a_folder_without_routes_is_a_clear_error(tmp_path: Path) -> None:
    result = run_to_exit(tmp_path, "run", ".", "--port", str(free_port()))
    assert result.returncode != 0
    assert "Error: . is a folder without socket/ or api/" in result.stderr
    assert "Traceback" not in result.stderr


def test_socket_without_a_socket_folder_says_what_it_imported(tmp_path: Path) -> None:
    result = run_to_exit(tmp_path, "run", "socket", "--port", str(free_port()))
    assert result.returncode != 0
    assert "Error: socket:app is not a hubbub App (module socket is " in result.stderr
    assert "Traceback" not in result.stderr


def test_an_app_file_whose_import_fails_shows_the_apps_frame(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """\
            from hubbub import App

            app = App()
            settings = load_settings()
            """
        )
    )
    result = run_to_exit(tmp_path, "run", "app.py:app", "--port", str(free_port()))
    assert result.returncode != 0
    assert result.stderr.startswith("Error: cannot import app.py: NameError: name 'load_settings' is not defined")
    assert f'File "{tmp_path / "app.py"}", line 4, in <module>' in result.stderr
    assert "settings = load_settings()" in result.stderr
    assert "Traceback" not in result.stderr
    assert "click" not in result.stderr


def test_a_module_whose_dependency_is_missing_names_the_dependency(tmp_path: Path) -> None:
    (tmp_path / "needs.py").write_text("import a_dependency_not_installed\n")
    result = run_to_exit(tmp_path, "run", "needs:app", "--port", str(free_port()))
    assert result.returncode != 0
    assert (
        "Error: cannot import needs: ModuleNotFoundError: No module named 'a_dependency_not_installed'" in result.stderr
    )
    assert "line 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_handler_module_is_named_at_startup(project: Path) -> None:
    (project / "socket" / "upper.py").write_text("config = {'type': 'text'}\ndef on_message(event):\n    return 1\n")
    result = run_to_exit(project, "run", ".", "--port", str(free_port()))
    assert result.returncode != 0
    assert "Error: socket/upper.py: config 'type' cannot be 'text'" in result.stderr
    assert "Traceback" not in result.stderr
