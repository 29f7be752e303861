"""`python -m hubbub` is the `hubbub` command."""

from hubbub.serve.cli import main

main()
