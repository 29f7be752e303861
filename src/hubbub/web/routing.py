"""Path patterns such as `/chat/{room}` or `/files/{rest:path}`, and the routes behind them."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hubbub.errors import ConfigurationError

_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::(str|path|int))?}")
_CONVERTERS = {"str": "[^/]+", "path": ".*", "int": "[0-9]+"}


class PathPattern:
    """A compiled path template; `{name}` matches one segment, `{name:path}` the rest."""

    __slots__ = ("_int_params", "_regex", "param_names", "template")

    def __init__(self, template: str) -> None:
        if not template.startswith("/"):
            raise ConfigurationError(f"route path must start with '/': {template!r}")
        self.template = template
        regex = "^"
        names: list[str] = []
        ints: list[str] = []
        last = 0
        for match in _PARAM.finditer(template):
            regex += re.escape(template[last : match.start()])
            name, kind = match.group(1), match.group(2) or "str"
            if name in names:
                raise ConfigurationError(f"parameter {name!r} appears twice in {template!r}")
            names.append(name)
            if kind == "int":
                ints.append(name)
            regex += f"(?P<{name}>{_CONVERTERS[kind]})"
            last = match.end()
        regex += re.escape(template[last:]) + "$"
        self._regex = re.compile(regex)
        self.param_names = tuple(names)
        self._int_params = tuple(ints)

    def match(self, path: str) -> dict[str, Any] | None:
        """The path parameters if `path` matches, else None (`{name:int}` values are ints)."""
        found = self._regex.match(path)
        if found is None:
            return None
        params: dict[str, Any] = found.groupdict()
        for name in self._int_params:
            params[name] = int(params[name])
        return params


HttpHandler = Callable[..., Awaitable[Any] | Any]


@dataclass
class HttpRoute:
    """An HTTP handler for some methods on a path pattern."""

    pattern: PathPattern
    methods: frozenset[str]
    handler: HttpHandler
    before: list[Callable[..., Any]] = field(default_factory=list)
    after: list[Callable[..., Any]] = field(default_factory=list)
    auth: Any = False
    """False: no authentication; True: the app's authenticator; a callable: that authenticator."""

    @classmethod
    def create(cls, path: str, methods: Iterable[str], handler: HttpHandler, **kwargs: Any) -> HttpRoute:
        """Build a route, normalising the method names (GET also answers HEAD)."""
        names = {method.upper() for method in methods}
        if "GET" in names:
            names.add("HEAD")
        return cls(PathPattern(path), frozenset(names), handler, **kwargs)
