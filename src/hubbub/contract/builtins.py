"""JSON Schemas of the envelope protocol's own types (docs/protocol.md, "Built-in types")."""

from __future__ import annotations

from typing import Any

ROOM: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 256}
POSITION: dict[str, Any] = {
    "type": "object",
    "properties": {"offset": {"type": "integer", "minimum": 0}, "epoch": {"type": "string"}},
    "required": ["offset", "epoch"],
}
PUBLICATION: dict[str, Any] = {
    "type": "object",
    "description": "A room publication as delivered live: its type, data and offset.",
    "properties": {"type": {"type": "string"}, "data": {}, "offset": {"type": "integer"}},
    "required": ["type", "data"],
}
ERROR: dict[str, Any] = {
    "type": "object",
    "description": "An error reply's or hubbub.error's error object; apps may add members.",
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "type": {"type": "string"},
        "fields": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "message": {"type": "string"},
                },
                "required": ["loc", "message"],
            },
        },
    },
    "required": ["code", "message"],
}
ERROR_CODES = [
    "invalid_message",
    "unknown_type",
    "validation_error",
    "handler_error",
    "timeout",
    "forbidden",
    "rate_limited",
    "unauthorized",
    "bad_request",
]


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


CLIENT_REQUESTS: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "hubbub.join": (
        _object({"room": ROOM, "history": {"type": "integer", "minimum": 0}, "since": POSITION}, ["room"]),
        _object(
            {
                "room": ROOM,
                "offset": {"type": "integer"},
                "epoch": {"type": "string"},
                "recovered": {"type": "boolean"},
                "publications": {"type": "array", "items": PUBLICATION},
            },
            ["room"],
        ),
        "Join a room; ask for its last `history` publications or for those after `since`.",
    ),
    "hubbub.leave": (_object({"room": ROOM}, ["room"]), _object({"room": ROOM}, ["room"]), "Leave a room."),
    "hubbub.publish": (
        _object(
            {"room": ROOM, "type": {"type": "string"}, "data": {}, "idempotency_key": {"type": "string"}}, ["room"]
        ),
        _object(
            {
                "room": ROOM,
                "delivered": {"type": "integer"},
                "offset": {"type": "integer"},
                "epoch": {"type": "string"},
                "duplicate": {"type": "boolean"},
            },
            ["room", "delivered"],
        ),
        "Publish to a room's members.",
    ),
    "hubbub.refresh": (
        _object({"token": {"type": "string"}}, ["token"]),
        _object({"expires_at": {"type": ["number", "null"]}}, ["expires_at"]),
        "Extend the connection with a fresh token.",
    ),
}

SERVER_EVENTS: dict[str, tuple[dict[str, Any], str]] = {
    "hubbub.welcome": (
        _object(
            {"client_id": {"type": "string"}, "user": {"type": ["string", "null"]}, "protocol": {"type": "integer"}},
            ["client_id", "user", "protocol"],
        ),
        "The first envelope of every connection.",
    ),
    "hubbub.presence": (
        _object(
            {
                "room": ROOM,
                "action": {"type": "string", "enum": ["join", "leave"]},
                "client_id": {"type": "string"},
                "user": {"type": ["string", "null"]},
                "info": {"type": "object"},
            },
            ["room", "action", "client_id", "user", "info"],
        ),
        "Someone joined or left a room this connection is in.",
    ),
    "hubbub.message": (
        _object(
            {"room": ROOM, "from": {"type": "string"}, "user": {"type": ["string", "null"]}, "data": {}},
            ["room", "from", "user", "data"],
        ),
        "A hubbub.publish without a type.",
    ),
}
