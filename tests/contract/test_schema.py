"""`hubbub schema`: the AsyncAPI 3 document of an app's channel routes validates against the
official AsyncAPI JSON Schema (from the npm package @asyncapi/specs, checked with ajv), every
$ref in it resolves, and the `--typescript` declarations make `tsc --noEmit` accept a correct
hubbub.js client and reject one that sends a wrong payload."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import hubbub
from hubbub.serve.cli import main

HERE = Path(__file__).resolve().parent
APP = str(HERE / "typed_app.py") + ":app"


@pytest.fixture(scope="module")
def node_tools() -> Path:
    """tests/contract/node_modules (installed with npm from package.json when missing)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed (apt-get install nodejs npm)")
    modules = HERE / "node_modules"
    if not (modules / "typescript").is_dir() or not (modules / "@asyncapi" / "specs").is_dir():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=300)
    return modules


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("schema")
    result = CliRunner().invoke(
        main, ["schema", APP, "-o", str(out / "app.json"), "--typescript", str(out / "app.d.ts"), "--title", "typed"]
    )
    assert result.exit_code == 0, result.output
    return json.loads((out / "app.json").read_text()), out


def validate(document: dict[str, Any], path: Path) -> subprocess.CompletedProcess[str]:
    path.write_text(json.dumps(document))
    return subprocess.run(
        ["node", str(HERE / "validate_asyncapi.js"), str(path)], capture_output=True, text=True, timeout=60
    )


def test_document_validates_against_the_asyncapi_schema(node_tools: Path, written: tuple[dict[str, Any], Path]) -> None:
    document, out = written
    checked = validate(document, out / "checked.json")
    assert checked.returncode == 0 and checked.stdout.strip() == "valid", checked.stdout
    broken = json.loads(json.dumps(document))
    broken["operations"]["receive.chat__team_.say"]["action"] = "publish"  # AsyncAPI 2's word, not 3's
    refused = validate(broken, out / "broken.json")
    assert refused.returncode == 1 and "/operations/receive.chat__team_.say" in refused.stdout


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def test_every_reference_resolves_and_types_are_described(written: tuple[dict[str, Any], Path]) -> None:
    document, _ = written
    for ref in refs(document):
        assert resolve(document, ref) is not None, ref
    assert document["asyncapi"] == "3.0.0" and document["info"]["title"] == "typed"
    chat = document["channels"]["chat__team_"]
    assert chat["address"] == "/chat/{team}"
    say = document["operations"]["receive.chat__team_.say"]
    assert say["action"] == "receive" and len(say["reply"]["messages"]) == 2
    payload = resolve(document, resolve(document, say["messages"][0]["$ref"])["$ref"])["payload"]
    assert payload["properties"]["type"] == {"const": "say"}
    assert set(payload["properties"]["data"]["required"]) == {"room", "text"}
    add_reply = resolve(document, "#/components/messages/chat__team_.add.reply")["payload"]
    assert add_reply["properties"]["data"] == {"type": "integer"}
    assert "Sum" in document["components"]["schemas"]  # the msgspec Struct
    assert document["operations"]["send.chat__team_.said"]["action"] == "send"
    assert {"send.ticks.tick", "receive.ticks.hubbub.join", "send.ticks.hubbub.presence"} <= set(document["operations"])
    assert resolve(document, "#/components/messages/ticks.tick")["payload"]["properties"]["data"]["type"] == "array"


def tsc(node_tools: Path, out: Path, source: str) -> subprocess.CompletedProcess[str]:
    client = out / "client.ts"
    client.write_text(source)
    declarations = Path(hubbub.STATIC_DIR) / "hubbub.d.ts"
    command = [str(node_tools / ".bin" / "tsc"), "--noEmit", "--strict", "--lib", "es2020,dom"]
    return subprocess.run(
        [*command, str(declarations), str(out / "app.d.ts"), str(client)], capture_output=True, text=True, timeout=120
    )


GOOD = """
const client = new Hubbub.Client<HubbubApp.ChatTeam>("/chat/a");
client.request("say", { room: "r", text: "hi" }).then((receipt) => receipt.said.text.toUpperCase());
client.request("add", { a: 1, b: 2 }, { timeoutMs: 500 }).then((sum) => sum + 1);
client.emit("ping");
client.on("said", (said) => said.text.length);
client.on("hubbub.presence", (presence) => presence.action === "join");
client.on("recovery", (info) => info.recovered);
const untyped = new Hubbub.Client("/anything");
untyped.emit("whatever", { any: "thing" });
"""

WRONG = """
new Hubbub.Client<HubbubApp.ChatTeam>("/c").request("say", { room: "r", txt: "hi" });
new Hubbub.Client<HubbubApp.ChatTeam>("/c").emit("add", { a: 1, b: "2" });
new Hubbub.Client<HubbubApp.Ticks>("/ticks").emit("say", { room: "r", text: "x" });
new Hubbub.Client<HubbubApp.ChatTeam>("/c").on("said", (said: { txt: string }) => said.txt);
"""


@pytest.mark.timeout(300)
def test_typescript_accepts_a_correct_client_and_catches_wrong_payloads(
    node_tools: Path, written: tuple[dict[str, Any], Path]
) -> None:
    _, out = written
    good = tsc(node_tools, out, GOOD)
    assert good.returncode == 0, good.stdout
    wrong = tsc(node_tools, out, WRONG)
    assert wrong.returncode != 0
    errors = {line.split("(", 1)[1].split(",", 1)[0] for line in wrong.stdout.splitlines() if "error TS" in line}
    assert errors == {"2", "3", "4", "5"}, wrong.stdout  # one error on each wrong line, none elsewhere
    assert "'txt' does not exist" in wrong.stdout and "not assignable to type 'number'" in wrong.stdout


def test_schema_of_a_target_that_is_not_an_app() -> None:
    result = CliRunner().invoke(main, ["schema", "tests/contract/nowhere.py:app"])
    assert result.exit_code == 1 and "no such file" in result.output
