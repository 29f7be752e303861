"""The short CI run of the fuzz harnesses: each one over its seed corpus and a few hundred
seeded mutations of it (fuzz/runner.py; no atheris needed), plus the crashes found by longer
runs, kept as regression inputs in fuzz/corpus/."""

from __future__ import annotations

import pytest
from fuzz.runner import HARNESSES, replay


@pytest.mark.parametrize("harness", HARNESSES)
def test_harness_passes_its_corpus_and_mutations(harness: str) -> None:
    assert replay(harness, random_inputs=400) >= 400
