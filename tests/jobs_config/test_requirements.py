"""requirements.txt: specifiers and the three allowed options; markers and URLs refused (spec §5.3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.errors import Invalid
from atoll.jobspec import PipOptions
from atoll.jobspec.requirements import (
    merge_pip_options,
    normalize_requirement,
    parse_requirements,
    read_requirements_file,
)


def test_specifiers_options_comments_and_continuations() -> None:
    parsed = parse_requirements(
        """
        # pinned
        numpy==1.26.4
        pandas >= 2.0, < 3   # a range
        uvicorn[standard]~=0.30
        Django
        scikit_learn!=1.3.0
        --no-deps
        --extra-index-url https://mirror.example/simple
        --extra-index-url=https://second.example/simple
        --trusted-host mirror.example
        requests \\
            ==2.32.3
        torch===2.3.0+cpu
        """
    )
    assert parsed.requirements == (
        "numpy==1.26.4",
        "pandas >= 2.0, < 3",
        "uvicorn[standard]~=0.30",
        "Django",
        "scikit_learn!=1.3.0",
        "requests ==2.32.3",
        "torch===2.3.0+cpu",
    )
    assert parsed.pip == PipOptions(
        extra_index_urls=("https://mirror.example/simple", "https://second.example/simple"),
        trusted_hosts=("mirror.example",),
        no_deps=True,
    )


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("numpy==1.26; python_version < '3.11'", "environment markers are not supported"),
        ("pywin32 ; sys_platform == 'win32'", "environment markers"),
        ("mypkg @ https://example.com/mypkg-1.0.tar.gz", "URL and path requirements are not supported"),
        ("git+https://github.com/org/repo.git", "URL and path"),
        ("https://example.com/pkg-1.0-py3-none-any.whl", "URL and path"),
        ("./local/pkg", "URL and path"),
        ("file:///tmp/pkg.whl", "URL and path"),
        ("-e .", "option -e is not supported (allowed: --no-deps, --extra-index-url, --trusted-host)"),
        ("-r other.txt", "option -r is not supported"),
        ("--index-url https://x/simple", "option --index-url is not supported"),
        ("--extra-index-url", "option --extra-index-url is not supported"),
        ("--no-deps please", "option --no-deps is not supported"),
        ("numpy==1.0 --hash=sha256:abc", "not a valid requirement"),
        ("numpy (>=1.0)", "not a valid requirement"),
        ("==1.0", "not a valid requirement"),
    ],
)
def test_refused_lines_name_the_file_and_line(line: str, fragment: str) -> None:
    with pytest.raises(Invalid) as e:
        parse_requirements(f"six==1.16.0\n\n{line}\n", "reqs.txt")
    assert e.value.field == "env.python.requirements-file"
    assert "reqs.txt:3:" in e.value.detail and fragment in e.value.detail


@pytest.mark.parametrize(
    ("requirement", "normal"),
    [
        ("PyYAML >= 6.0", "pyyaml>=6.0"),
        ("Foo_Bar.baz[Extra_B, a]==1.0", "foo-bar-baz[a,extra-b]==1.0"),
        ("pandas<3, >=2", "pandas<3,>=2"),
        ("pandas >=2,<3", "pandas<3,>=2"),
        ("six", "six"),
    ],
)
def test_normalized_spelling(requirement: str, normal: str) -> None:
    assert normalize_requirement(requirement) == normal


def test_normalize_refuses_anything_that_looks_like_an_option() -> None:
    for bad in ("--index-url=http://evil/simple", "-e.", ""):
        with pytest.raises(Invalid):
            normalize_requirement(bad)


def test_read_requirements_file(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("six==1.16.0\n")
    assert read_requirements_file(tmp_path / "r.txt").requirements == ("six==1.16.0",)
    with pytest.raises(Invalid) as e:
        read_requirements_file(tmp_path / "missing.txt", "missing.txt")
    assert e.value.field == "env.python.requirements-file" and "missing.txt was not found" in e.value.detail


def test_merge_pip_options() -> None:
    merged = merge_pip_options(
        PipOptions("https://idx", ("a",), ("h1",), False), PipOptions(None, ("a", "b"), ("h2",), True)
    )
    assert merged == PipOptions("https://idx", ("a", "b"), ("h1", "h2"), True)
    assert merge_pip_options(None, None) == PipOptions()


def test_requirement_name_is_the_canonical_package_name() -> None:
    from atoll.jobspec.requirements import requirement_name

    cases = {
        "numpy==2.4.6": "numpy",
        "Scikit_Learn>=1.5,<2": "scikit-learn",
        "psycopg[binary]==3.2": "psycopg",
        "rfc3987-syntax~=1.0": "rfc3987-syntax",
        "six!=1.0": "six",
        "polars": "polars",
        " tomli ; python_version<'3.11'": "tomli",
    }
    assert {r: requirement_name(r) for r in cases} == cases
