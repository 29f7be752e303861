"""Builds hubbub's C accelerator; all other metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("hubbub.transport._speedups", ["src/hubbub/transport/_speedups.c"], extra_compile_args=["-O3"]),
    ],
)
