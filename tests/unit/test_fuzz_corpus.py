"""The short CI run of the fuzz harnesses: each one over its seed corpus and a few hundred
seeded mutations of it (fuzz/runner.py; no atheris needed), then, where the tools are
installed, a few thousand coverage-guided inputs under atheris and the C speed-ups under
libFuzzer with AddressSanitizer. Inputs that once failed are kept in fuzz/corpus/."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz.runner import HARNESSES, replay


@pytest.mark.parametrize("harness", HARNESSES)
def test_harness_passes_its_corpus_and_mutations(harness: str) -> None:
    assert replay(harness, random_inputs=400) >= 400


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris (the fuzz extra) is not installed")
@pytest.mark.parametrize("harness", HARNESSES)
def test_harness_runs_under_atheris(harness: str, tmp_path: Path) -> None:
    """A few thousand coverage-guided inputs per harness (pip install -e '.[fuzz]')."""
    shutil.copytree(ROOT / "fuzz" / "corpus" / harness, tmp_path / "corpus")
    done = subprocess.run(
        [sys.executable, "-m", f"fuzz.fuzz_{harness}", "-runs=3000", f"-artifact_prefix={tmp_path}/", "corpus"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done 3000 runs" in done.stderr


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang with libFuzzer is not installed")
def test_c_speedups_under_address_sanitizer(tmp_path: Path) -> None:
    """Build the libFuzzer + ASan + UBSan harness of _speedups.c and run it over the corpus."""
    build = subprocess.run(
        ["sh", str(ROOT / "fuzz" / "speedups" / "build.sh")],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if build.returncode != 0 and "libclang_rt.fuzzer" in build.stderr + build.stdout:
        pytest.skip("clang has no libFuzzer runtime here")
    assert build.returncode == 0, build.stderr[-3000:]
    shutil.copytree(ROOT / "fuzz" / "corpus" / "speedups", tmp_path / "corpus")
    done = subprocess.run(
        [build.stdout.strip().splitlines()[-1], "-runs=20000", f"-artifact_prefix={tmp_path}/", "corpus"],
        cwd=tmp_path,
        env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0", "PYTHONMALLOC": "malloc"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done 20000 runs" in done.stderr
