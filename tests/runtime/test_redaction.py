"""Secret redaction in the supervisor's log pump, including values split across reads."""

from __future__ import annotations

from atoll.runtime.redaction import Redactor


def _through(secrets: list[str], pieces: list[bytes]) -> bytes:
    r = Redactor(secrets)
    return b"".join(r.feed(p) for p in pieces) + r.flush()


def test_secret_split_at_every_position_is_redacted() -> None:
    text = b"token=s3cr3t-VALUE; again s3cr3t-VALUE.\n"
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            out = _through(["s3cr3t-VALUE"], [text[:i], text[i:j], text[j:]])
            assert out == b"token=***; again ***.\n", (i, j)


def test_byte_by_byte_and_overlapping_secrets() -> None:
    secrets = ["abcabd", "abc"]
    text = b"abcabcabd xx abcab abcabd"
    whole = Redactor(secrets).redact(text)
    # At each position the longer secret wins; a trailing partial match is decided at the end.
    assert whole == b"****** xx ***ab ***"
    assert _through(secrets, [bytes([c]) for c in text]) == whole
    # A secret that is a prefix of another must not give away the longer one's tail.
    assert _through(secrets, [b"abc", b"abd"]) == b"***"
    assert _through(["abcd", "cdz"], [b"ab", b"cd", b"z"]) == b"***z"


def test_output_that_cannot_start_a_secret_is_not_held_back() -> None:
    r = Redactor(["zzz-secret"])
    assert r.feed(b"epoch 1 done\n") == b"epoch 1 done\n"
    assert r.feed(b"loss zz") == b"loss "  # "zz" may begin the secret: held
    assert r.feed(b"top\n") == b"zztop\n"
    assert Redactor([]).feed(b"anything") == b"anything"
    assert Redactor(["", "x"]).redact(b"xyx") == b"***y***"


def test_streaming_equals_redacting_the_whole_stream() -> None:
    import random

    rng = random.Random(7)
    for _ in range(2000):
        secrets = [
            "".join(rng.choice("ab") for _ in range(rng.randint(1, 5))) for _ in range(rng.randint(1, 3))
        ]
        text = "".join(rng.choice("abc") for _ in range(rng.randint(0, 30))).encode()
        cuts = sorted(rng.randint(0, len(text)) for _ in range(rng.randint(0, 4)))
        pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert _through(secrets, pieces) == Redactor(secrets).redact(text), (secrets, pieces)
