"""hubbub apps the harness serves for its own scenarios (besides examples/echo.py)."""
