"""The `atoll` command line: Typer commands over the HTTP client."""

import sys

# `import httpx` also loads httpx's own command-line tool (click, pygments, rich.syntax,
# rich.progress): a fifth of every `atoll` start, for an entry point Atoll never calls.
# A None entry makes that optional import fail, and httpx falls back to a stub `main`.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
