"""The deploy gateway under cProfile, for bench/gateway.py --profile: the same code as
``python -m atoll.gateway`` (settings from the ATOLL_* environment, uvloop when installed), with its
statistics written to the file named by the first argument when it stops (SIGTERM)."""

from __future__ import annotations

import asyncio
import cProfile
import sys

from atoll.gateway import serve
from atoll.settings import Settings


def main() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    profile = cProfile.Profile()
    profile.enable()
    try:
        asyncio.run(serve.main(Settings()))
    finally:
        profile.disable()
        profile.dump_stats(sys.argv[1])


if __name__ == "__main__":
    main()
