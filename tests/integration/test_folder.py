"""Handler folders: socket/NAME.py and api/NAME.py as routes, config, errors as {"error": ...}, _middleware.py."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path

import pytest

from hubbub import App, ConfigurationError, ConnectionClosed, load_folder
from hubbub.client import connect
from hubbub.testing import serve_app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "handlers"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


async def login(server: object, name: str) -> str:
    response = await server.request("POST", "/login", json={"name": name})  # type: ignore[attr-defined]
    assert response.status == 200
    token: str = response.json()["token"]
    return token


async def test_the_example_folder(capsys: pytest.CaptureFixture[str]) -> None:
    """examples/handlers: login over HTTP, JSON echo on /, string type on /upper, rooms, presence, auth on api."""
    app = load_folder(EXAMPLE)
    async with serve_app(app) as server:
        ada, bob = await login(server, "ada"), await login(server, "bob")
        async with await server.connect(f"/?token={ada}") as ws:
            await ws.send(json.dumps({"hi": 1}))
            assert json.loads(await ws.recv()) == {"from": "ada", "echo": {"hi": 1}}
            await ws.send("[1, 2]")
            assert json.loads(await ws.recv()) == {"error": "send a JSON object"}
            await ws.send("{not json")
            assert json.loads(await ws.recv())["error"].startswith("invalid JSON")
            online = await server.request("GET", "/online/ada", headers={"authorization": f"Bearer {bob}"})
            assert online.json() == {"online": True}
        async with await server.connect(f"/upper?token={ada}") as ws:
            await ws.send("shout")
            assert await ws.recv() == "SHOUT"
        async with (
            await server.connect(f"/rooms/lobby?token={ada}") as a,
            await server.connect(f"/rooms/lobby?token={bob}") as b,
        ):
            await b.send(json.dumps({"text": "b first"}))  # b's own copy proves b joined
            assert json.loads(await b.recv())["data"]["text"] == "b first"
            await a.send(json.dumps({"text": "hello room"}))
            said = json.loads(await b.recv())
            assert said == {"type": "said", "data": {"room": "lobby", "from": "ada", "text": "hello room"}}
            await a.send(json.dumps({"nope": 1}))
            reply = json.loads(await a.recv())
            while reply.get("type") == "said":  # b's message may reach a first
                reply = json.loads(await a.recv())
            assert reply == {"error": 'send {"text": "..."}'}
        anonymous = await server.request("GET", "/online/ada")
        assert anonymous.status == 401
        bad_login = await server.request("POST", "/login", body=b"{oops")
        assert bad_login.status == 400
        refused = await connect(server.url("/"))
        with pytest.raises(ConnectionClosed):
            await refused.recv(timeout=5)
        assert refused.close_code == 4001
    printed = capsys.readouterr().out
    assert "ada is online" in printed
    assert "bob is online" in printed


async def test_handler_errors_and_timeouts_answer_error_objects(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write(
        tmp_path,
        {
            "socket/index.py": """
                import asyncio
                config = {"timeout": 0.2}
                async def on_message(event):
                    if event.data == "slow":
                        await asyncio.sleep(5)
                    if event.data == "boom":
                        raise RuntimeError("it broke")
                    if event.data == "silent":
                        return None
                    return {"ok": event.data}
            """,
            "socket/raw.py": """
                config = {"type": "binary"}
                def on_message(event):
                    return bytes(reversed(event.data))
            """,
        },
    )
    async with serve_app(load_folder(root)) as server, await server.connect("/") as ws:
        await ws.send('"slow"')
        assert json.loads(await ws.recv()) == {"error": "timed out after 0.2 s"}
        await ws.send('"boom"')
        assert json.loads(await ws.recv()) == {"error": "it broke"}
        await ws.send('"silent"')
        await ws.send('"fine"')
        assert json.loads(await ws.recv()) == {"ok": "fine"}  # nothing was sent for "silent"
        async with await server.connect("/raw") as raw:
            await raw.send(b"\x01\x02\x03")
            assert await raw.recv() == b"\x03\x02\x01"
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name == "hubbub.folder"]
    assert any("socket/index.py: on_message timed out" in m for m in failures)
    assert any("socket/index.py: on_message failed" in m for m in failures)


async def test_api_methods_and_index_routes(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "api/index.py": "def get(request):\n    return {'home': True}\n",
            "api/items/{item_id:int}.py": """
                def get(request):
                    return {"id": request.path_params["item_id"]}
                async def delete(request):
                    return None
            """,
            "api/_helpers.py": "raise RuntimeError('never imported: names starting with _ are not routes')\n",
        },
    )
    async with serve_app(load_folder(root)) as server:
        assert (await server.request("GET", "/")).json() == {"home": True}
        assert (await server.request("GET", "/items/7")).json() == {"id": 7}
        assert (await server.request("DELETE", "/items/7")).status == 204
        assert (await server.request("POST", "/items/7")).status == 405


async def test_routes_are_added_to_a_given_app(tmp_path: Path) -> None:
    root = write(tmp_path, {"socket/echo.py": "def on_message(event):\n    return event.data\n"})
    app = App()

    @app.get("/extra")
    async def extra(request: object) -> str:
        return "extra"

    assert load_folder(root, app) is app
    async with serve_app(app) as server, await server.connect("/echo") as ws:
        await ws.send('{"a": 1}')
        assert json.loads(await ws.recv()) == {"a": 1}
        assert (await server.request("GET", "/extra")).text == "extra"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"socket/chat.py": "def on_message(event)\n    pass\n"}, "socket/chat.py: SyntaxError"),
        ({"socket/chat.py": "import no_such_dependency\n"}, "socket/chat.py: ModuleNotFoundError"),
        ({"socket/chat.py": "x = 1\n"}, "socket/chat.py: define on_message(event)"),
        (
            {"socket/chat.py": "config = {'type': 'xml'}\ndef on_message(e): pass\n"},
            "socket/chat.py: config 'type' cannot be 'xml'",
        ),
        (
            {"socket/chat.py": "config = {'timeout': -1}\ndef on_message(e): pass\n"},
            "socket/chat.py: config 'timeout' cannot be -1",
        ),
        (
            {"socket/chat.py": "config = {'retries': 3}\ndef on_message(e): pass\n"},
            "socket/chat.py: unknown config key 'retries'",
        ),
        ({"socket/chat.py": "config = 'json'\ndef on_message(e): pass\n"}, "socket/chat.py: config must be a dict"),
        ({"api/items.py": "def fetch(request): pass\n"}, "api/items.py: define at least one of get, post"),
        (
            {"socket/_middleware.py": "authenticate = 'nobody'\n", "socket/a.py": "def on_message(e): pass\n"},
            "socket/_middleware.py: authenticate must be a function",
        ),
        ({"socket/_private.py": "def on_message(e): pass\n"}, "no route modules in socket/ or api/"),
    ],
    ids=[
        "syntax",
        "import",
        "no-handler",
        "bad-type",
        "bad-timeout",
        "unknown-key",
        "config-not-dict",
        "no-method",
        "bad-middleware",
        "no-routes",
    ],
)
def test_module_errors_name_the_file_at_startup(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_folder(write(tmp_path, files))
    assert message in str(raised.value).replace("cannot import ", "")


def test_a_good_module_is_not_an_error(tmp_path: Path) -> None:
    """The limit's other side: every allowed config value loads."""
    root = write(
        tmp_path,
        {
            f"socket/{kind}.py": f"config = {{'type': '{kind}', 'timeout': None}}\ndef on_message(e): pass\n"
            for kind in ("json", "string", "binary")
        },
    )
    assert isinstance(load_folder(root), App)


def test_not_a_handler_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="has no socket/ or api/ folder"):
        load_folder(tmp_path)
    with pytest.raises(ConfigurationError, match="no such folder"):
        load_folder(tmp_path / "missing")


def test_syntax_error_message_has_the_line(tmp_path: Path) -> None:
    root = write(tmp_path, {"socket/chat.py": "x = 1\ndef on_message(event)\n    pass\n"})
    with pytest.raises(ConfigurationError) as raised:
        load_folder(root)
    assert "line 2" in str(raised.value)
    assert "def on_message(event)" in str(raised.value)
