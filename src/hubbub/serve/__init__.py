"""What stands on an App: the native server's runner, the `hubbub` command, workers, metrics and the dashboard."""
