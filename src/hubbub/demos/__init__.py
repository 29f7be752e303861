"""Demo apps that run on the embedded default, no services needed (`hubbub demo ...`)."""
