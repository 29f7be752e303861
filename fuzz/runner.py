"""What every harness shares: atheris when run as a program, plain replay inside the test suite.

Run one harness:      python -m fuzz.fuzz_frames fuzz/corpus/frames -max_total_time=60
Replay the corpus:    python -m fuzz.runner            (what the test suite does, no atheris needed)
"""

from __future__ import annotations

import contextlib
import importlib
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
HARNESSES = ("frames", "handshake", "deflate", "envelope")


def _fuzzing() -> bool:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec is not None and spec.name.startswith("fuzz.fuzz_")


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """Instrument the imports inside for coverage when a harness runs under atheris."""
    if _fuzzing():
        import atheris

        with atheris.instrument_imports(include=["hubbub"]):
            yield
    else:
        yield


def fuzz(test_one_input: Callable[[bytes], None]) -> None:
    """Hand the harness to atheris (libFuzzer flags come from the command line)."""
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


def replay(name: str, random_inputs: int = 300, seed: int = 15) -> int:
    """Run a harness over its seed corpus and `random_inputs` mutations of it; return the count."""
    module = importlib.import_module(f"fuzz.fuzz_{name}")
    test_one_input: Callable[[bytes], None] = module.test_one_input
    seeds = [path.read_bytes() for path in sorted((CORPUS / name).iterdir()) if path.is_file()]
    rng = random.Random(seed)
    runs = 0
    for data in seeds:
        test_one_input(data)
        runs += 1
    for _ in range(random_inputs):
        mutant = bytearray(rng.choice(seeds)) if seeds else bytearray()
        for _ in range(rng.randrange(1, 8)):
            op = rng.randrange(4)
            if op == 0 and mutant:
                mutant[rng.randrange(len(mutant))] = rng.randrange(256)
            elif op == 1:
                mutant.insert(rng.randrange(len(mutant) + 1), rng.randrange(256))
            elif op == 2 and mutant:
                del mutant[rng.randrange(len(mutant))]
            else:
                mutant += rng.randbytes(rng.randrange(1, 16))
        test_one_input(bytes(mutant))
        runs += 1
    return runs


if __name__ == "__main__":
    for harness in sys.argv[1:] or HARNESSES:
        print(f"{harness}: {replay(harness)} inputs, no failure")
