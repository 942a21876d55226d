"""What a Dockerfile builds from, as the image builder reads it before any build: the base images
it must check (FROM, COPY --from), its own stages left out, variables in FROM refused."""

from __future__ import annotations

import pytest

from atoll.runtime.docker.images import base_images, check_dockerfile, registry_of, tag_parts


def test_bases_across_stages_continuations_and_comments() -> None:
    text = (
        "# syntax comment\n"
        "FROM --platform=linux/amd64 python:3.11-slim AS build\n"
        "RUN echo \\\n"
        "  FROM not-an-instruction\n"
        "from build as second\n"
        "COPY --from=build /a /a\n"
        "COPY --from=registry.example:5000/tools/x:1 /b /b\n"
        "COPY --from=0 /c /c\n"
        "FROM \\\n"
        "  debian:bookworm\n"
    )
    assert base_images(text) == ["python:3.11-slim", "registry.example:5000/tools/x:1", "debian:bookworm"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("RUN true\n", "no FROM"),
        ("ARG B=x\nFROM $B\n", "variable"),
        ("FROM ${IMAGE:-debian}\n", "variable"),
        ("FROM debian\x00\n", "NUL"),
        ("FROM debian\nADD http://127.0.0.1:8802/v2/ /x\n", "ADD is not allowed"),
        ("FROM debian\nadd \\\n  https://example.com/a.tgz /x\n", "ADD is not allowed"),
        ("FROM debian\n" + "#" * (64 * 1024), "KiB"),
    ],
)
def test_what_cannot_be_built_is_refused_with_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        check_dockerfile(text)


def test_registry_and_tag_of_a_reference() -> None:
    assert registry_of("debian:bookworm") == ""
    assert registry_of("library/debian") == ""
    assert registry_of("127.0.0.1:5000/atoll/p/x:1") == "127.0.0.1:5000"
    assert registry_of("localhost/x") == "localhost"
    assert registry_of("cr.yandex/b1g/x:0.1") == "cr.yandex"
    assert tag_parts("atoll/p/x:1.0") == ("atoll/p/x", "1.0")
    assert tag_parts("127.0.0.1:5000/x") == ("127.0.0.1:5000/x", "latest")
