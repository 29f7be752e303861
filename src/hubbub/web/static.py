"""`StaticFiles`: the files below a directory, served over HTTP."""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path

from hubbub.errors import ConfigurationError
from hubbub.web.response import Response, error_response

_MEDIA_TYPES = {".ts": "application/typescript", ".mjs": "text/javascript", ".js": "text/javascript"}
"""Types the platform's mimetypes table gets wrong for the web (".ts" is not MPEG transport here)."""


class StaticFiles:
    """Serves the files below a directory (GET and HEAD), refusing paths that escape it."""

    def __init__(self, directory: str | os.PathLike[str], *, index: str = "index.html") -> None:
        self.directory = Path(directory).resolve()
        self.index = index
        if not self.directory.is_dir():
            raise ConfigurationError(f"static directory not found: {self.directory}")

    def resolve(self, relative: str) -> Path | None:
        """The file to serve for `relative`, or None if there is none (or it escapes)."""
        try:
            target = (self.directory / relative.lstrip("/")).resolve()
            if target != self.directory and self.directory not in target.parents:
                return None
            if target.is_dir():
                target = target / self.index
            return target if target.is_file() else None
        except (ValueError, OSError, RuntimeError):  # a NUL byte ("%00"), a name too long, a symlink loop
            return None

    def response(self, relative: str) -> Response:
        """A response with the file's content, or a 404 JSON error."""
        target = self.resolve(relative)
        if target is None:
            return error_response(404, "not found")
        media_type = _MEDIA_TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0]
        if media_type is None:
            media_type = "application/octet-stream"
        elif media_type.startswith("text/") or media_type in ("application/javascript", "application/json"):
            media_type += "; charset=utf-8"
        return Response(target.read_bytes(), media_type=media_type)
