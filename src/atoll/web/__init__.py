"""Server-rendered web UI (Jinja2 + htmx)."""
