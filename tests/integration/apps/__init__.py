"""Tiny apps the integration tests run with the `hubbub` command."""
