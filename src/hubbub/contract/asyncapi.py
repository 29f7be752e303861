"""An AsyncAPI 3.0 document of an app's channel routes.

Each channel route is an AsyncAPI channel at its path. What clients send (the route's
event types and the built-in hubbub.join/leave/publish/refresh) are `receive` operations
of the app, with a reply when used as requests; what the server sends (the types declared
with `channel.emits`, the welcome, presence, publications, errors) are `send` operations.
Payloads are whole envelopes; `data` carries the models' JSON Schemas.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from hubbub.app.channel import Channel
from hubbub.contract import builtins
from hubbub.contract.models import Schemas, reply_type
from hubbub.protocol.envelope import PROTOCOL_VERSION

if TYPE_CHECKING:
    from hubbub.app.app import App

ASYNCAPI_VERSION = "3.0.0"
ID = re.compile(r"[^\w.\-]")
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def key(text: str) -> str:
    """A component or map key AsyncAPI accepts (letters, digits, '.', '-', '_')."""
    return ID.sub("_", text.strip("/")) or "root"


def channel_routes(app: App) -> list[tuple[str, Channel]]:
    """The app's channel routes as (path template, channel), in declaration order."""
    return [(pattern.template, endpoint) for pattern, endpoint in app._ws_routes if isinstance(endpoint, Channel)]


def _envelope(type: str | None, data: dict[str, Any], *, request: bool | None, offset: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    if type is not None:
        properties["type"] = {"const": type}
        required.append("type")
    if request is not False:
        properties["id"] = {"type": ["string", "integer"]}
        if type is None:
            required.append("id")
    properties["data"] = data
    if offset:
        properties["offset"] = {"type": "integer", "minimum": 1}
    return {"type": "object", "properties": properties, "required": required}


class _Builder:
    def __init__(self, app: App, title: str, version: str) -> None:
        self.app = app
        self.schemas = Schemas()
        self.doc: dict[str, Any] = {
            "asyncapi": ASYNCAPI_VERSION,
            "info": {
                "title": title,
                "version": version,
                "description": f"Channel routes of a hubbub app (envelope protocol v{PROTOCOL_VERSION}).",
            },
            "defaultContentType": "application/json",
            "channels": {},
            "operations": {},
            "components": {"schemas": {"ErrorBody": builtins.ERROR}, "messages": {}},
        }

    def build(self) -> dict[str, Any]:
        for path, channel in channel_routes(self.app):
            self.route(path, channel)
        self.doc["components"]["schemas"].update(self.schemas.components)
        return self.doc

    def route(self, path: str, channel: Channel) -> None:
        cid = key(path)
        messages: dict[str, Any] = {}
        self.doc["channels"][cid] = {
            "address": path,
            "title": path,
            "description": "Envelopes over WebSocket, subprotocol "
            + ", ".join(codec.subprotocol or codec.name for codec in channel.codecs),
            "messages": messages,
        }
        error_ref = self.message(
            cid,
            messages,
            "error_reply",
            {
                "type": "object",
                "properties": {"id": {"type": ["string", "integer"]}, "error": dict(ERROR_REF)},
                "required": ["id", "error"],
            },
            "An error reply to a request.",
        )
        for type, spec in channel.events.items():
            data = self.schemas.of(spec.model)
            reply = self.schemas.of(reply_type(spec.function))
            self.receive(cid, messages, type, data, reply, error_ref, getattr(spec.function, "__doc__", None))
        for type, (data, reply, summary) in builtins.CLIENT_REQUESTS.items():
            self.receive(cid, messages, type, data, reply, error_ref, summary)
        for type, model in channel.server_events.items():
            self.send(cid, messages, type, _envelope(type, self.schemas.of(model), request=False, offset=True), None)
        for type, (data, summary) in builtins.SERVER_EVENTS.items():
            self.send(
                cid, messages, type, _envelope(type, data, request=False, offset=type == "hubbub.message"), summary
            )
        hubbub_error = {
            "type": "object",
            "properties": {"type": {"const": "hubbub.error"}, "error": dict(ERROR_REF)},
            "required": ["type", "error"],
        }
        self.send(cid, messages, "hubbub.error", hubbub_error, "An event or undecodable envelope failed.")

    def message(
        self, cid: str, messages: dict[str, Any], name: str, payload: dict[str, Any], summary: str | None
    ) -> dict[str, Any]:
        component = key(f"{cid}.{name}")
        body: dict[str, Any] = {"name": name, "payload": payload}
        if summary:
            body["summary"] = " ".join(summary.split())
        self.doc["components"]["messages"][component] = body
        messages[key(name)] = {"$ref": f"#/components/messages/{component}"}
        return {"$ref": f"#/channels/{cid}/messages/{key(name)}"}

    def receive(
        self,
        cid: str,
        messages: dict[str, Any],
        type: str,
        data: dict[str, Any],
        reply: dict[str, Any],
        error_ref: dict[str, Any],
        summary: str | None,
    ) -> None:
        incoming = self.message(cid, messages, type, _envelope(type, data, request=None), summary)
        outgoing = self.message(cid, messages, f"{type}.reply", _envelope(None, reply, request=True), None)
        self.doc["operations"][key(f"receive.{cid}.{type}")] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": [incoming],
            "reply": {"channel": {"$ref": f"#/channels/{cid}"}, "messages": [outgoing, error_ref]},
        }

    def send(self, cid: str, messages: dict[str, Any], type: str, payload: dict[str, Any], summary: str | None) -> None:
        ref = self.message(cid, messages, type, payload, summary)
        self.doc["operations"][key(f"send.{cid}.{type}")] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": [ref],
        }


def asyncapi_document(app: App, *, title: str = "hubbub app", version: str = "1.0.0") -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a JSON-ready dict) of every channel route of `app`."""
    return _Builder(app, title, version).build()
