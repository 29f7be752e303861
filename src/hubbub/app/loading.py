"""Importing the user's code (app files, handler-folder modules) with errors that name the file and line."""

from __future__ import annotations

import importlib.util
import linecache
import sys
import traceback
from pathlib import Path
from types import ModuleType

from hubbub.errors import ConfigurationError


def load_module(path: Path, name: str, *, shown_as: str | None = None) -> ModuleType:
    """Import the file `path` as module `name`; raise ConfigurationError naming the file and the
    failing line (not the import machinery's frames) if it cannot be imported."""
    label = shown_as or str(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"cannot load {label}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ConfigurationError(describe_failure(exc, label)) from None
    return module


def describe_failure(exc: BaseException, label: str) -> str:
    """`label: Kind: message` and the innermost frame of the user's own code that raised it."""
    if isinstance(exc, SyntaxError):
        where = f'"{exc.filename or label}", line {exc.lineno}' if exc.lineno else f'"{label}"'
        text = f"\n    {exc.text.strip()}" if exc.text and exc.text.strip() else ""
        return f"cannot import {label}: {type(exc).__name__}: {exc.msg}\n  File {where}{text}"
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<frozen ") and "importlib" not in Path(frame.filename).parts
    ]
    lines = [f"cannot import {label}: {type(exc).__name__}: {exc}"]
    if frames:
        frame = frames[-1]
        lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        source = frame.line or linecache.getline(frame.filename, frame.lineno or 0).strip()
        if source:
            lines.append(f"    {source}")
    return "\n".join(lines)
