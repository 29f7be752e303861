"""The broker conformance suite: one set of tests that every engine (memory, redis) must pass."""
