"""``python -m atoll.gateway``: the deploy gateway process (see atoll.gateway.serve)."""

from atoll.gateway.serve import run

run()
