"""TypeScript declarations that type hubbub.js per event name, from the AsyncAPI document.

For each channel route it declares `HubbubApp.<Route>`, a channel spec whose `requests`
map each type a client may send to its payload and reply, and whose `events` map each
type the server sends to its payload; `new Hubbub.Client<HubbubApp.Rooms>("/rooms")`
then checks `emit`, `request` and `on` against them (see hubbub.d.ts, `ChannelSpec`).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from hubbub.contract.asyncapi import asyncapi_document

if TYPE_CHECKING:
    from hubbub.app.app import App

NAMESPACE = "HubbubApp"
_WORD = re.compile(r"[A-Za-z0-9]+")
_PRIMITIVES = {"string": "string", "integer": "number", "number": "number", "boolean": "boolean", "null": "null"}


def type_name(text: str) -> str:
    """A TypeScript identifier for a component or route name ("/chat/{room}" -> "ChatRoom")."""
    name = "".join(word[:1].upper() + word[1:] for word in _WORD.findall(text)) or "Root"
    return f"_{name}" if name[0].isdigit() else name


def ts_type(schema: Any, indent: str = "") -> str:
    """The TypeScript type of a JSON Schema (refs become the named types of the namespace)."""
    if not isinstance(schema, dict) or not schema:
        return "Hubbub.Json"
    if "$ref" in schema:
        return type_name(schema["$ref"].rsplit("/", 1)[-1])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"]) or "never"
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return " | ".join(_grouped(ts_type(part, indent)) for part in schema[combinator]) or "never"
    if "allOf" in schema:
        return " & ".join(_grouped(ts_type(part, indent)) for part in schema["allOf"]) or "unknown"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(ts_type({**schema, "type": one}, indent) for one in kind)
    if kind == "array":
        items = schema.get("prefixItems")
        if isinstance(items, list):
            return "[" + ", ".join(ts_type(item, indent) for item in items) + "]"
        return f"Array<{ts_type(schema.get('items', {}), indent)}>"
    if kind == "object" or "properties" in schema:
        return _object(schema, indent)
    return _PRIMITIVES.get(kind, "Hubbub.Json") if isinstance(kind, str) else "Hubbub.Json"


def _grouped(text: str) -> str:
    return f"({text})" if " | " in text or " & " in text else text


def _object(schema: dict[str, Any], indent: str) -> str:
    properties: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    inner = indent + "  "
    lines = [
        f"{inner}{json.dumps(name)}{'' if name in required else '?'}: {ts_type(value, inner)};"
        for name, value in properties.items()
    ]
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        lines.append(f"{inner}[key: string]: {ts_type(extra, inner)};")
    elif not properties and extra is not False:
        lines.append(f"{inner}[key: string]: Hubbub.Json;")
    return "{\n" + "\n".join(lines) + f"\n{indent}}}"


def _data_of(doc: dict[str, Any], ref: str) -> Any:
    message = doc["components"]["messages"][ref.rsplit("/", 1)[-1]]
    payload = message["payload"]["properties"]
    return payload.get("data", payload.get("error"))


def typescript_declarations(app: App, *, title: str = "hubbub app") -> str:
    """The .d.ts text: one `HubbubApp.<Route>` channel spec per channel route of `app`."""
    doc = asyncapi_document(app, title=title)
    out = [
        f"// Types of the channel routes of {title}, written by `hubbub schema --typescript`.",
        '// Compile together with hubbub.d.ts; then: const client = new Hubbub.Client<HubbubApp.Rooms>("/rooms");',
        "",
        f"declare namespace {NAMESPACE} {{",
    ]
    for name, schema in doc["components"]["schemas"].items():
        out.append(f"  type {type_name(name)} = {ts_type(schema, '  ')};")
    for cid, channel in doc["channels"].items():
        requests: list[str] = []
        events: list[str] = []
        for operation in doc["operations"].values():
            if operation["channel"]["$ref"] != f"#/channels/{cid}":
                continue
            message_ref = doc["channels"][cid]["messages"][operation["messages"][0]["$ref"].rsplit("/", 1)[-1]]["$ref"]
            type = doc["components"]["messages"][message_ref.rsplit("/", 1)[-1]]["name"]
            payload = _data_of(doc, message_ref)
            data = ts_type(payload, "      ") + (" | undefined" if payload == {} else "")
            if operation["action"] == "receive":
                reply_ref = operation["reply"]["messages"][0]["$ref"].rsplit("/", 1)[-1]
                reply = ts_type(_data_of(doc, doc["channels"][cid]["messages"][reply_ref]["$ref"]), "      ")
                requests.append(f"      {json.dumps(type)}: {{ data: {data}; reply: {reply} }};")
            else:
                events.append(f"      {json.dumps(type)}: {data};")
        out += [
            f"  /** The channel route {channel['address']}. */",
            f"  interface {type_name(cid)} {{",
            "    requests: {",
            *requests,
            "    };",
            "    events: {",
            *events,
            "    };",
            "  }",
        ]
    out += ["}", ""]
    return "\n".join(out)
