"""The change board that job followers wait on (storage/log_watch.py): a bump from any thread wakes
a waiter, a bump between reading and waiting is not lost, and dropping old keys never hides one."""

from __future__ import annotations

import asyncio
import threading

from atoll.storage.log_watch import ChangeBoard


def test_a_bump_from_another_thread_wakes_a_waiter() -> None:
    board = ChangeBoard()

    async def main() -> bool:
        since = board.versions(["a"])
        threading.Timer(0.05, board.notify, args=("a",)).start()
        return await board.wait(since, timeout=30)

    assert asyncio.run(main()) is True


def test_a_bump_before_the_wait_is_not_lost_and_quiet_keys_time_out() -> None:
    board = ChangeBoard()

    async def main() -> tuple[bool, bool]:
        since = board.versions(["a", "b"])
        board.notify("b")  # after the read, before the wait
        moved = await board.wait(since, timeout=30)
        quiet = await board.wait(board.versions(["a", "b"]), timeout=0.05)
        return moved, quiet

    assert asyncio.run(main()) == (True, False)


def test_dropping_old_keys_never_hides_a_change() -> None:
    board = ChangeBoard()
    board.MAX_KEYS = 3
    board.notify("old")
    seen = board.versions(["old"])
    for k in ("a", "b", "c"):  # "old" is dropped: the table keeps the newest three
        board.notify(k)
    assert board.versions(["old"]) == {"old": 0}
    board.notify("old")  # bumped again: a number it never had, so the follower sees the change
    assert board.versions(["old"])["old"] not in (0, seen["old"])

    async def main() -> bool:
        return await board.wait(seen, timeout=30)

    assert asyncio.run(main()) is True
