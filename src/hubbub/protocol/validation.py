"""Typed payloads: validate an envelope's data against a pydantic model, a msgspec
Struct, or any type pydantic can validate (dataclasses, TypedDicts, list[int], ...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hubbub.errors import ConfigurationError
from hubbub.protocol.envelope import VALIDATION_ERROR, EnvelopeError
from hubbub.text import clip

Validator = Callable[[Any], Any]


MAX_FIELDS = 10
"""Field errors reported for one message (a payload can carry thousands of wrong keys)."""
MESSAGE_LIMIT = 200
"""Characters kept of a validator's message (some quote the client's value)."""


def _invalid(fields: list[dict[str, Any]]) -> EnvelopeError:
    bounded = [
        {
            "loc": [part if isinstance(part, int) else clip(part) for part in field["loc"]],
            "message": clip(field["message"], MESSAGE_LIMIT),
        }
        for field in fields[:MAX_FIELDS]
    ]
    names = ", ".join(".".join(str(part) for part in field["loc"]) or "data" for field in bounded)
    if len(fields) > MAX_FIELDS:
        names += f" (and {len(fields) - MAX_FIELDS} more)"
    return EnvelopeError(VALIDATION_ERROR, f"invalid data: {names}", fields=bounded)


_MISSING_FIELD = "Object missing required field `"


def _msgspec_validator(model: type) -> Validator:
    import msgspec

    def validate(data: Any) -> Any:
        try:
            return msgspec.convert(data, type=model)
        except msgspec.ValidationError as exc:
            text = str(exc)
            path = text.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in text else "$"
            parts = path.lstrip("$").replace("[", ".").replace("]", "").split(".")
            loc: list[str | int] = [int(part) if part.isdigit() else part for part in parts if part]
            message = text.split(" - at `")[0]
            if message.startswith(_MISSING_FIELD):  # name the missing field, as pydantic does
                loc.append(message[len(_MISSING_FIELD) :].rstrip("`"))
            raise _invalid([{"loc": loc, "message": message}]) from None

    return validate


def _pydantic_validator(model: Any) -> Validator:
    try:
        import pydantic
    except ImportError:
        raise ConfigurationError(f"validating {model!r} needs pydantic: pip install 'hubbub[pydantic]'") from None
    adapter = pydantic.TypeAdapter(model)

    def validate(data: Any) -> Any:
        try:
            return adapter.validate_python(data)
        except pydantic.ValidationError as exc:
            fields = [{"loc": list(err["loc"]), "message": err["msg"]} for err in exc.errors()]
            raise _invalid(fields) from None

    return validate


def validator_for(model: Any) -> Validator:
    """A function that returns the validated value or raises EnvelopeError(validation_error)."""
    try:
        import msgspec
    except ImportError:
        msgspec = None  # type: ignore[assignment]
    if msgspec is not None and isinstance(model, type) and issubclass(model, msgspec.Struct):
        return _msgspec_validator(model)
    return _pydantic_validator(model)
