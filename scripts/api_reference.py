"""Write docs/api.md, the API reference, from the docstrings of hubbub's public names.

    python scripts/api_reference.py          # rewrite docs/api.md
    python scripts/api_reference.py --check  # exit 1 if docs/api.md is not what the code says

The public names are `hubbub.__all__`, the asyncio client (`hubbub.client`) and the
test helpers (`hubbub.testing.__all__`). Signatures and docstrings come from the code
(`inspect`), so the reference cannot drift from it; tests run `--check`.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "api.md"
SECTIONS = (
    ("hubbub", "Everything an app uses: `from hubbub import ...`."),
    ("hubbub.client", "A small asyncio WebSocket client (tests, scripts, tools)."),
    ("hubbub.testing", "Serving an app, or a cluster of nodes, inside tests."),
)
CLIENT_NAMES = ("connect", "WebSocketClient")


def public_names(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    names = CLIENT_NAMES if module_name == "hubbub.client" else getattr(module, "__all__", ())
    return sorted(names, key=lambda name: (not name[0].isupper() or name.isupper(), name.lower()))


def signature(obj: Any) -> str:
    """`(a: int, *, b: str = 'x') -> bool`, with annotations as written in the code (no `self`)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    parts = []
    star_done = False
    for param in sig.parameters.values():
        if param.name == "self":
            continue
        if param.kind is param.KEYWORD_ONLY and not star_done:
            parts.append("*")
        star_done = star_done or param.kind in (param.KEYWORD_ONLY, param.VAR_POSITIONAL)
        prefix = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(param.kind, "")
        text = prefix + param.name
        if param.annotation is not param.empty:
            text += f": {annotation(param.annotation)}"
        if param.default is not param.empty:
            text += f" = {param.default!r}"
        parts.append(text)
    returned = sig.return_annotation
    arrow = "" if returned is sig.empty or annotation(returned) == "None" else f" -> {annotation(returned)}"
    return f"({', '.join(parts)}){arrow}"


def annotation(value: Any) -> str:
    return value if isinstance(value, str) else inspect.formatannotation(value)


def doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__) if obj.__doc__ else ""


def first_paragraph(obj: Any) -> str:
    return " ".join(doc(obj).split("\n\n")[0].split())


def members(cls: type) -> list[str]:
    """One line per public method and property that the class itself defines or documents."""
    lines = []
    for name, value in vars(cls).items():
        if name.startswith("_") and name not in ("__call__", "__init__"):
            continue
        if name == "__init__":
            continue
        if isinstance(value, property):
            lines.append(f"- `{name}` (property): {first_paragraph(value)}".rstrip(": "))
        elif isinstance(value, staticmethod | classmethod):
            lines.append(f"- `{name}{signature(value.__func__)}`: {first_paragraph(value.__func__)}".rstrip(": "))
        elif inspect.isfunction(value):
            shown = signature(value)
            lines.append(f"- `{name}{shown}`: {first_paragraph(value)}".rstrip(": "))
    return lines


def describe(module_name: str, name: str) -> list[str]:
    obj = getattr(importlib.import_module(module_name), name)
    if getattr(obj, "__origin__", None) is not None:  # a type alias
        return [f"### `{name}`", "", f"A type: `{annotation(obj).replace('typing.', '')}`.", ""]
    if inspect.isclass(obj):
        shown = signature(obj) if "__init__" in vars(obj) or not issubclass(obj, Exception) else ""
        out = [f"### `{name}{shown}`", "", doc(obj) or "(no docstring)", ""]
        listed = members(obj)
        return out + ([*listed, ""] if listed else [])
    if callable(obj):
        return [f"### `{name}{signature(obj)}`", "", doc(obj) or "(no docstring)", ""]
    return [f"### `{name}`", "", f"A constant: `{type(obj).__name__}`.", ""]


def render() -> str:
    out = [
        "# API reference",
        "",
        "Generated from the docstrings by `python scripts/api_reference.py`; do not edit by hand.",
        "The guide ([guide.md](guide.md)) explains how the pieces fit together.",
        "",
    ]
    for module_name, summary in SECTIONS:
        out += [f"## `{module_name}`", "", summary, ""]
        for name in public_names(module_name):
            out += describe(module_name, name)
    return "\n".join(out).rstrip("\n") + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run python scripts/api_reference.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
