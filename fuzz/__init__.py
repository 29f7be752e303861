"""Coverage-guided fuzz harnesses (atheris) and the libFuzzer harness of the C speed-ups."""
