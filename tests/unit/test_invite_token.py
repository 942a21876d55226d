"""An invite's token is pasted as a command argument: it never starts with "-"."""

from __future__ import annotations

import secrets

import pytest

from atoll.domain.members import invite_token


def test_a_draw_that_starts_with_a_dash_is_thrown_away(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter(["-qnHfbeqvK3GuKjeUoVFIQiTN3NK9zNX", "--x", "qnHfbeqvK3GuKjeUoVFIQiTN3NK9zNX"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: next(draws))
    assert invite_token() == "qnHfbeqvK3GuKjeUoVFIQiTN3NK9zNX"


def test_real_tokens_are_long_and_never_look_like_options() -> None:
    tokens = {invite_token() for _ in range(2000)}
    assert len(tokens) == 2000
    assert all(len(t) == 32 and not t.startswith("-") for t in tokens)
