"""The package's layers (docs/architecture.md): every module imports only its own layer or the ones below.

Every import of a hubbub module counts: at module level, inside a function, and under TYPE_CHECKING.
No imports form a cycle (type hints included) outside KNOWN_GROUPS, in the app layer none at all, and
no run-time imports form a cycle anywhere.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hubbub

PACKAGE = Path(hubbub.__file__).resolve().parent

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("hubbub.errors", "hubbub.text")),
    ("web", ("hubbub.web",)),
    ("auth", ("hubbub.auth",)),
    ("engines", ("hubbub.options", "hubbub.protocol", "hubbub.transport", "hubbub.broker", "hubbub.client")),
    ("runtime", ("hubbub.runtime", "hubbub.history", "hubbub.inbox")),
    ("app", ("hubbub.app",)),
    ("serve", ("hubbub.serve", "hubbub.contract")),
    ("package", ("hubbub", "hubbub.__main__", "hubbub.testing", "hubbub.demos")),
)
"""Lowest first; a module belongs to the layer of its longest listed prefix ("hubbub" alone is the package's
`__init__`, which gathers the public names from every layer)."""


KNOWN_GROUPS: tuple[frozenset[str], ...] = (
    frozenset(
        {
            "hubbub.runtime.connection",
            "hubbub.runtime.events",
            "hubbub.runtime.hub",
            "hubbub.runtime.kept_rooms",
            "hubbub.inbox.inbox",
            "hubbub.inbox.session",
            "hubbub.history.recovery",
        }
    ),
    frozenset({"hubbub.history.store", "hubbub.history.redis"}),
)
"""Modules that name each other in type hints only (run-time imports have no cycle, see below): the Hub
returns Connections and a Connection calls its Hub (so do the Hub's kept rooms), an Event gives its
connection and hub, the inbox and recovery deliver to Connections; a RedisStore makes its RedisHistory,
which types its store. Imports inside a group may form cycles; a cycle through anything else fails."""


@dataclass(frozen=True)
class Import:
    """One import of a hubbub module by another."""

    source: str
    target: str
    line: int
    type_only: bool


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the module's layer, None if no layer lists it."""
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix != "hubbub" and module.startswith(prefix + "."))
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                inside.update(id(sub) for sub in ast.walk(child))
    return inside


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    """The hubbub modules `module` imports: `from hubbub.x import y` names hubbub.x.y when that is a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.append(submodule if submodule in modules else base)
        for target in targets:
            if target == "hubbub" or target.startswith("hubbub."):
                yield Import(module, target, node.lineno, id(node) in type_only)


def all_imports() -> list[Import]:
    modules = module_names()
    return [found for name, path in modules.items() for found in imports_of(name, path, modules)]


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(name for name in module_names() if layer_of(name) is None)
    assert not unplaced, f"modules in no layer of LAYERS (tests/unit/test_layers.py): {unplaced}"


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = []
    for found in all_imports():
        source, target = layer_of(found.source), layer_of(found.target)
        if source is not None and target is not None and target > source:
            kind = " (under TYPE_CHECKING)" if found.type_only else ""
            upward.append(
                f"{found.source} (layer {LAYERS[source][0]}) imports {found.target} "
                f"(layer {LAYERS[target][0]}) at line {found.line}{kind}"
            )
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_no_import_cycle_but_the_known_groups() -> None:
    """Type hints included: the app layer, and every other, imports without a cycle, except inside a known group."""
    group_of = {module: group for group in KNOWN_GROUPS for module in group}
    edges: dict[str, set[str]] = {}
    for found in all_imports():
        group = group_of.get(found.source)
        if found.source != found.target and (group is None or found.target not in group):
            edges.setdefault(found.source, set()).add(found.target)
    cycle = find_cycle(edges)
    assert cycle is None, "modules import each other in a circle: " + " -> ".join(cycle or ())


def test_run_time_imports_have_no_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for found in all_imports():
        if not found.type_only and found.source != found.target:
            edges.setdefault(found.source, set()).add(found.target)
    cycle = find_cycle(edges)
    assert cycle is None, "modules import each other at run time in a circle: " + " -> ".join(cycle or ())


def test_the_checks_see_an_upward_import_and_a_cycle() -> None:
    """The helpers find what the tests above forbid."""
    runtime, app = layer_of("hubbub.runtime.hub"), layer_of("hubbub.app.app")
    assert runtime is not None and app is not None and app > runtime
    assert layer_of("hubbub") == len(LAYERS) - 1
    assert layer_of("hubbub.elsewhere") is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
