"""JSON Schemas of payload and reply types (pydantic models, msgspec Structs, anything
pydantic can describe), with their definitions gathered under one components map."""

from __future__ import annotations

import typing
from typing import Any

REF = "#/components/schemas/{model}"
ANY: dict[str, Any] = {}
"""The schema of a value of any type (no model given)."""


class Schemas:
    """Collects the named definitions the schemas of several types refer to."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, model: Any) -> dict[str, Any]:
        """The JSON Schema of `model` (refs point into `components`); {} for None or Any."""
        if model is None or model is Any:
            return dict(ANY)
        if model is type(None):
            return {"type": "null"}
        try:
            import msgspec
        except ImportError:  # pragma: no cover - msgspec is optional
            msgspec = None  # type: ignore[assignment]
        if msgspec is not None and isinstance(model, type) and issubclass(model, msgspec.Struct):
            (schema,), components = msgspec.json.schema_components([model], ref_template=REF.replace("model", "name"))
            self.components.update(components)
            return dict(schema)
        import pydantic

        schema = pydantic.TypeAdapter(model).json_schema(ref_template=REF)
        self.components.update(schema.pop("$defs", {}))
        return schema


def reply_type(function: Any) -> Any:
    """A handler's return annotation, without the Awaitable of a coroutine (None if absent)."""
    if function is None:
        return None
    try:
        hints = typing.get_type_hints(function)
    except Exception:
        return None
    if "return" not in hints:
        return Any
    return hints["return"]
