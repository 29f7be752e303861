"""pyproject.toml: what a plain install brings, and metadata setuptools accepts without warnings."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=;! ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def test_license_is_an_spdx_string_with_a_setuptools_that_reads_it() -> None:
    """A TOML-table license makes setuptools warn on every install; an SPDX string needs setuptools>=77."""
    assert PYPROJECT["project"]["license"] == "MIT"
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"]


def test_a_plain_install_runs_every_example() -> None:
    """The examples and README snippets import jwt and pydantic: both come with `pip install .`."""
    core = names(PYPROJECT["project"]["dependencies"])
    assert {"pyjwt", "pydantic"} <= core
    imported = set()
    for example in (ROOT / "examples").rglob("*.py"):
        imported |= set(re.findall(r"^(?:import|from) (\w+)", example.read_text(), re.M))
    ours = {"__future__", "hubbub", "settings", "examples"}
    third_party = imported - ours - set(sys.stdlib_module_names)
    assert third_party <= {"jwt", "pydantic"}, third_party


def test_asgi_hosts_are_test_dependencies_with_lower_bounds() -> None:
    test_extra = PYPROJECT["project"]["optional-dependencies"]["test"]
    for package in ("uvicorn", "starlette", "fastapi"):
        assert any(re.match(rf"{package}(\[\w+\])?>=\d", requirement) for requirement in test_extra), package
