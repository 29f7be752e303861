"""Every Python snippet of README.md and docs/guide.md runs as shown.

Each snippet starts with `# NAME.py`; all snippets of a document are written into
one folder, as a reader would save them. An app snippet is served with the real
`hubbub run NAME.py:app`; the `try_*.py` clients after it run against it (with
the port changed from 8000), must exit 0, and print exactly the ```text block
that follows them, if one does. Other scripts run with `python NAME.py`; test
files run under pytest. The server must stop cleanly with no traceback.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import free_port, wait_accepting

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", ROOT / "docs" / "guide.md")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
NAME = re.compile(r"^(?:#|<!--)\s*([\w./{}-]+\.(?:py|html))\b")
SERVED = re.compile(r"^app\s*=", re.M)
RUNS_ITSELF = re.compile(r"^asyncio\.run\(", re.M)


@dataclass
class Snippet:
    doc: Path
    line: int
    lang: str
    name: str | None
    source: str
    output: str | None = None
    """The ```text block right after this snippet: what running it prints."""

    @property
    def label(self) -> str:
        return f"{self.doc.name}:{self.line}:{self.name}"


def read_snippets(doc: Path) -> list[Snippet]:
    text = doc.read_text()
    found: list[Snippet] = []
    last_end = 0
    for match in FENCE.finditer(text):
        lang, source = match.group(1), match.group(2)
        if lang == "text" and found and not text[last_end : match.start()].strip():
            found[-1].output = source  # a text block right after a snippet is its output
        else:
            named = NAME.match(source)
            line = text.count("\n", 0, match.start()) + 1
            found.append(Snippet(doc, line, lang, named.group(1) if named else None, source))
        last_end = match.end()
    return found


def python_snippets() -> list[Snippet]:
    return [s for doc in DOCS for s in read_snippets(doc) if s.lang == "python"]


def write_folder(doc: Path, folder: Path) -> None:
    """Save every named snippet of `doc` into `folder`, and what the guide says must exist."""
    for snippet in read_snippets(doc):
        if snippet.name is not None:
            target = folder / snippet.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(snippet.source)
    (folder / "public").mkdir(exist_ok=True)  # static_site.py: "the directory must exist"
    (folder / "public" / "index.html").write_text("<h1>hi</h1>")


def plans() -> list[tuple[Snippet, list[Snippet]]]:
    """(snippet to run, the try_*.py clients to run against it) for each runnable snippet.
    The files of a handler folder (socket/..., api/...) make one app, served with `hubbub run .`."""
    planned: list[tuple[Snippet, list[Snippet]]] = []
    for doc in DOCS:
        current: tuple[Snippet, list[Snippet]] | None = None
        folder: tuple[Snippet, list[Snippet]] | None = None
        for snippet in read_snippets(doc):
            if snippet.lang != "python" or snippet.name is None:
                continue
            name = Path(snippet.name).name
            if snippet.name.startswith(("socket/", "api/")):
                if folder is None:
                    folder = (Snippet(doc, snippet.line, "python", ".", ""), [])
                    planned.append(folder)
                current = folder
            elif name.startswith("try_"):
                assert current is not None, f"{snippet.label}: a client with no app before it"
                current[1].append(snippet)
            elif name.startswith("test_") or name == "conftest.py":
                if name.startswith("test_"):
                    planned.append((snippet, []))
            else:
                current = (snippet, [])
                planned.append(current)
    return planned


def is_served(snippet: Snippet) -> bool:
    if snippet.name == ".":
        return True
    return bool(SERVED.search(snippet.source)) and not RUNS_ITSELF.search(snippet.source)


def uses_asgi_host(snippet: Snippet) -> bool:
    """An app for uvicorn (a FastAPI or Starlette app with hubbub mounted in it)."""
    return "from fastapi import" in snippet.source or "from starlette" in snippet.source


def test_every_python_snippet_is_named() -> None:
    """A reader can save each snippet under the name the docs use for it (`hubbub run NAME.py:app`)."""
    for doc in DOCS:
        names = [s.name for s in read_snippets(doc) if s.lang == "python"]
        assert None not in names, f"{doc.name}: a Python snippet without a '# NAME.py' first line"
        assert len(names) == len(set(names)), f"{doc.name}: two snippets share a name"


def test_every_hubbub_run_command_names_a_snippet_or_an_example() -> None:
    for doc in DOCS:
        text = doc.read_text()
        names = {s.name for s in read_snippets(doc)}
        for target in re.findall(r"hubbub run ([\w./][\w./-]*)(?::\w+)?", text):
            if target.isupper() or target in ("FILE.py",):  # placeholders: TARGET, DIR, FILE.py
                continue
            assert target in names or (ROOT / target).exists(), f"{doc.name}: `hubbub run {target}` names nothing"


def test_docs_import_from_the_public_surface() -> None:
    """Snippets import app-side names from `hubbub` itself; only the client, testing and the
    Redis engine's own module are reached by their module path."""
    allowed = ("hubbub.client", "hubbub.testing")
    for snippet in python_snippets():
        for module in re.findall(r"^from (hubbub[\w.]*) import", snippet.source, re.M):
            assert module == "hubbub" or module in allowed, f"{snippet.label}: from {module} import ..."


async def serve(folder: Path, snippet: Snippet, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    assert snippet.name is not None
    if snippet.name == ".":
        command = [sys.executable, "-m", "hubbub", "run", ".", "--port", str(port)]
    elif uses_asgi_host(snippet):
        command = [sys.executable, "-m", "uvicorn", f"{Path(snippet.name).stem}:app", "--port", str(port)]
    else:
        command = [sys.executable, "-m", "hubbub", "run", f"{snippet.name}:app", "--port", str(port)]
    with log.open("wb") as err:
        proc = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=err, env=env)
    await wait_accepting(proc, port)
    return proc


def run_script(folder: Path, snippet: Snippet, port: int, env: dict[str, str], *args: str) -> str:
    assert snippet.name is not None
    source = (folder / snippet.name).read_text().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    script = folder / f"_run_{Path(snippet.name).name}"
    script.write_text(source)
    done = subprocess.run(
        [sys.executable, script.name, *args], cwd=folder, capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, f"{snippet.label} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert "Warning" not in done.stderr, done.stderr
    if snippet.output is not None:
        assert done.stdout == snippet.output, f"{snippet.label} printed:\n{done.stdout}"
    return done.stdout


@pytest.mark.parametrize(("snippet", "clients"), plans(), ids=lambda value: getattr(value, "label", ""))
async def test_snippet_runs_as_shown(
    snippet: Snippet, clients: list[Snippet], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    write_folder(snippet.doc, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    needs_redis = "redis" in snippet.source.lower() or "cluster" in snippet.source
    redis_url = request.getfixturevalue("redis_url") if needs_redis else ""
    if needs_redis:
        env["REDIS_URL"] = redis_url
    assert snippet.name is not None
    name = Path(snippet.name).name
    if name.startswith("test_"):
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return
    port = free_port()
    if not is_served(snippet):
        run_script(tmp_path, snippet, port, env, *([redis_url] if needs_redis else []))
        return
    log = tmp_path / "server.log"
    proc = await serve(tmp_path, snippet, port, env, log)
    try:
        for client in clients:
            await asyncio.to_thread(run_script, tmp_path, client, port, env)
        proc.send_signal(signal.SIGTERM)
        stopped = await asyncio.to_thread(proc.wait, 20)
        assert stopped == 0 or (uses_asgi_host(snippet) and stopped == -signal.SIGTERM)  # uvicorn re-raises it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    logged = log.read_text()
    deliberate = logged.count("on_message failed")  # a handler-folder handler raising on purpose is logged
    assert logged.count("Traceback") == deliberate, logged[-3000:]
    assert "Warning" not in logged, logged[-3000:]  # e.g. PyJWT's InsecureKeyLengthWarning for a short secret
