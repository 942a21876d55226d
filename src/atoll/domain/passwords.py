"""The password policy: long enough, and not easy to guess by zxcvbn's estimate.

zxcvbn (Dropbox's estimator) scores a password 0-4 by the guesses an attacker would need,
knowing common passwords, words, names, keyboard walks, repeats, dates and the account's own
details; its feedback tells the person what to change. A length floor alone lets
"aaaaaaaaaa" and "password123" through; a score alone lets short random strings through.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from zxcvbn import zxcvbn

from atoll.errors import Invalid

MIN_LENGTH = 10
# 3 is "safely unguessable: moderate protection from an offline slow-hash scenario" (~10^10
# guesses); argon2 hashes are slow, so this is the level zxcvbn's authors recommend.
MIN_SCORE = 3
# zxcvbn's run time grows with length and it refuses more than 72 characters; a longer password
# is at least as strong as its first 72.
_SCORED_PREFIX = 72
# zxcvbn keeps the user inputs of the call in a module-level dictionary: calls from the server's
# thread pool must not see each other's usernames.
_lock = threading.Lock()


def check_password(
    password: str, *, username: str = "", user_inputs: Iterable[str] = (), field: str = "password"
) -> None:
    """Raise Invalid (422, naming `field`) unless `password` satisfies the policy; the message
    carries zxcvbn's advice on what to change."""
    if username and password.lower() == username.lower():
        raise Invalid(f"{field} must not be the username", field=field)
    inputs = [x for x in (username, *user_inputs) if x]
    with _lock:
        result = zxcvbn(password[:_SCORED_PREFIX], user_inputs=inputs)
    short = len(password) < MIN_LENGTH
    weak = result["score"] < MIN_SCORE
    if not short and not weak:
        return
    feedback = result.get("feedback") or {}
    advice = [str(feedback.get("warning") or "")] + [str(s) for s in feedback.get("suggestions") or ()]
    text = " ".join(a.strip() for a in advice if a.strip())
    text = text or "Use a few uncommon words, or a password manager's random password."
    if short and weak:
        detail = f"{field} must be at least {MIN_LENGTH} characters and is too easy to guess: {text}"
    elif short:
        detail = f"{field} must be at least {MIN_LENGTH} characters"
    else:
        detail = f"{field} is too easy to guess: {text}"
    raise Invalid(detail, field=field)
