"""Pip requirements: one requirement per line, checked and normalized (spec §5.3).

A requirements file may hold package specifiers (``numpy==1.26.4``, ``pandas>=2,<3``,
``uvicorn[standard]``), ``--no-deps``, ``--extra-index-url URL`` and ``--trusted-host HOST``.
Environment markers and URL requirements are refused, as in DataSphere: the environment is
built for one known platform, and everything must come from a package index.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from atoll.errors import Invalid
from atoll.jobspec.config import PipOptions

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_OP = r"(?:~=|===|==|!=|<=|>=|<|>)"
_VERSION = r"[A-Za-z0-9.*+!_-]+"
_REQ_RE = re.compile(
    rf"^(?P<name>{_NAME})\s*"
    rf"(?:\[\s*(?P<extras>{_NAME}(?:\s*,\s*{_NAME})*)?\s*\])?\s*"
    rf"(?P<spec>{_OP}\s*{_VERSION}(?:\s*,\s*{_OP}\s*{_VERSION})*)?\s*$"
)
_URL_RE = re.compile(r"(^|\s)@|://|^(git|hg|svn|bzr)\+|^file:|^[./~]")
_OPTION_RE = re.compile(r"^(-{1,2}[A-Za-z][A-Za-z-]*)(?:[=\s]\s*(.*))?$")
ALLOWED_OPTIONS = "--no-deps, --extra-index-url, --trusted-host"
DEFAULT_FIELD = "env.python.requirements-file"


def canonical_name(name: str) -> str:
    """PEP 503 name: lowercase, runs of ``-_.`` as one ``-`` (``PyYAML`` -> ``pyyaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The canonical name of the package a requirement (or a ``name==version`` pin) is about."""
    return canonical_name(re.split(r"[\[<>=!~;@\s]", requirement.strip(), maxsplit=1)[0])


def normalize_requirement(requirement: str, field: str = "env.python") -> str:
    """A requirement in one canonical spelling, so equal sets give equal cache keys.

    ``PyYAML >= 6.0`` -> ``pyyaml>=6.0``; extras sorted. Refuses markers, URLs and anything that
    is not a plain specifier (it is passed to uv as an argument, so nothing may look like an option).
    """
    text = requirement.strip()
    if ";" in text:
        raise Invalid(f"{field}: environment markers are not supported ({text!r})", field=field)
    if _URL_RE.search(text):
        raise Invalid(f"{field}: URL and path requirements are not supported ({text!r})", field=field)
    m = _REQ_RE.match(text)
    if not m:
        raise Invalid(f"{field}: not a valid requirement: {text!r} (write e.g. numpy==1.26.4)", field=field)
    out = canonical_name(m.group("name"))
    if m.group("extras"):
        extras = sorted({canonical_name(e.strip()) for e in m.group("extras").split(",")})
        out += f"[{','.join(extras)}]"
    if m.group("spec"):
        out += ",".join(sorted(part.replace(" ", "") for part in m.group("spec").split(",")))
    return out


@dataclass(frozen=True)
class RequirementsFile:
    """What a requirements file asks for: requirements as written, and pip options."""

    requirements: tuple[str, ...]
    pip: PipOptions


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with continuations (trailing backslash) joined and comments removed, with line numbers."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buf:
            start = number
        line = raw.rstrip()
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        line = buf + line
        buf = ""
        line = re.sub(r"(^|\s)#.*$", "", line).strip()  # pip's rule: '#' at the start or after a space
        if line:
            out.append((start, line))
    if buf.strip():
        out.append((start, buf.strip()))
    return out


def parse_requirements(
    text: str, source: str = "requirements.txt", field: str = DEFAULT_FIELD
) -> RequirementsFile:
    """Parse requirements-file text; errors name ``field`` and the line: ``requirements.txt:3: ...``."""
    requirements: list[str] = []
    pip = PipOptions()
    for number, line in _logical_lines(text):
        where = f"{source}:{number}"
        if line.startswith("-"):
            m = _OPTION_RE.match(line)
            option, value = (m.group(1), (m.group(2) or "").strip()) if m else (line.split()[0], "")
            if option == "--no-deps" and not value:
                pip = dataclasses.replace(pip, no_deps=True)
            elif option == "--extra-index-url" and value:
                pip = dataclasses.replace(pip, extra_index_urls=(*pip.extra_index_urls, value))
            elif option == "--trusted-host" and value:
                pip = dataclasses.replace(pip, trusted_hosts=(*pip.trusted_hosts, value))
            else:
                raise Invalid(
                    f"{field}: {where}: option {option} is not supported (allowed: {ALLOWED_OPTIONS})",
                    field=field,
                )
            continue
        try:
            normalize_requirement(line, field)
        except Invalid as e:
            raise Invalid(e.detail.replace(f"{field}: ", f"{field}: {where}: ", 1), field=field) from None
        requirements.append(" ".join(line.split()))  # continuation lines leave runs of spaces
    return RequirementsFile(tuple(requirements), pip)


def read_requirements_file(
    path: Path, shown: str | None = None, field: str = DEFAULT_FIELD
) -> RequirementsFile:
    """Read and parse a requirements file; a missing file is an error naming ``field``."""
    shown = shown or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Invalid(f"{field}: requirements file {shown} was not found", field=field) from None
    except (OSError, UnicodeDecodeError) as e:
        raise Invalid(f"{field}: cannot read {shown}: {e}", field=field) from None
    return parse_requirements(text, shown, field)


def merge_pip_options(a: PipOptions | None, b: PipOptions | None) -> PipOptions:
    """Options from the config and from the requirements file together (lists joined, no-deps if either)."""
    a, b = a or PipOptions(), b or PipOptions()
    return PipOptions(
        index_url=a.index_url or b.index_url,
        extra_index_urls=tuple(dict.fromkeys(a.extra_index_urls + b.extra_index_urls)),
        trusted_hosts=tuple(dict.fromkeys(a.trusted_hosts + b.trusted_hosts)),
        no_deps=a.no_deps or b.no_deps,
    )
