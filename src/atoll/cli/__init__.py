"""The `atoll` command line: Typer commands over the HTTP client."""
