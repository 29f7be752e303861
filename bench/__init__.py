"""hubbub benchmark harness: peers, a raw-protocol load generator and scenarios.

Run everything with ``python -m bench`` from the repository root; see
``python -m bench --help`` and ``docs/benchmarks.md``.
"""
