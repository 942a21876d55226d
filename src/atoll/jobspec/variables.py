"""Job variables: names, ``${VAR}`` references in ``cmd`` and their substitution (spec §5.2).

A variable names something the server supplies: an input or output path, a mounted S3
connector or dataset, an output-dataset directory, or a literal argument from ``args``.
``$VAR`` without braces is never touched: it belongs to the shell.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from atoll.errors import Invalid
from atoll.jobspec.model import ATTACH_PROJECT_DISK

if TYPE_CHECKING:
    from atoll.jobspec.model import JobConfig

# DataSphere's pattern reads `[0-9a-z-A-z\-_]{1,50}`; the `a-A` / `A-z` ranges are a typo for this one.
VAR_NAME_RE = re.compile(r"[0-9a-zA-Z\-_]{1,50}")
DS_PROJECT_HOME = "DS_PROJECT_HOME"
RESERVED_VARS = frozenset({DS_PROJECT_HOME})
# Any text between `${` and the first `}` is a reference, as in DataSphere; so `${X:-y}` is refused
# at parse time rather than reaching the shell half-substituted.
VAR_REF_RE = re.compile(r"\$\{(.+?)\}")


def check_var_name(name: object, field: str) -> str:
    """A valid, non-reserved variable name, or an ``Invalid`` naming ``field``."""
    if not isinstance(name, str) or not VAR_NAME_RE.fullmatch(name):
        raise Invalid(
            f"{field}: variable name {name!r} must be 1-50 characters of letters, digits, '-' or '_'",
            field=field,
        )
    if name in RESERVED_VARS:
        raise Invalid(f"{field}: name {name} is reserved and cannot be used for a variable", field=field)
    return name


def references(cmd: str) -> list[str]:
    """Names referenced as ``${NAME}`` in ``cmd``, in order of appearance, without duplicates."""
    return list(dict.fromkeys(VAR_REF_RE.findall(cmd)))


def _quote(value: str, context: str | None) -> str:
    """Quote ``value`` so the shell reads it back as exactly one word in the given quoting context."""
    if context == "'":
        return value.replace("'", "'\\''")
    if context == '"':
        return re.sub(r'([\\"$`])', r"\\\1", value)
    return shlex.quote(value)


def substitute(cmd: str, values: Mapping[str, str], *, verbatim: Collection[str] = ()) -> str:
    """Replace every ``${NAME}`` in ``cmd`` with ``values[NAME]``, quoted for the shell.

    Each value is quoted for where it stands: bare, inside ``"..."`` or inside ``'...'``, so a
    path with spaces stays one word (a plain path such as ``/data/in.csv`` is inserted as is).
    Names in ``verbatim`` are inserted as written: job ``args`` are literal text in DataSphere,
    so ``OPTIONS: "-h -r"`` gives two words. ``$NAME`` without braces is left for the shell.
    A reference without a value raises ``Invalid`` naming ``cmd``.
    """
    out: list[str] = []
    context: str | None = None  # None (bare), "'" or '"'
    i, n = 0, len(cmd)
    while i < n:
        c = cmd[i]
        if c == "$":
            m = VAR_REF_RE.match(cmd, i)
            if m:
                name = m.group(1)
                if name not in values:
                    raise Invalid(f"cmd: no value for ${{{name}}}", field="cmd")
                value = values[name]
                out.append(value if name in verbatim else _quote(value, context))
                i = m.end()
                continue
        if c == "\\" and context != "'" and i + 1 < n and cmd[i + 1] != "$":
            # An escaped character never opens or closes quotes; `\$` is let through so that
            # `\${X}` is still substituted, as DataSphere's plain text replacement does.
            out.append(cmd[i : i + 2])
            i += 2
            continue
        if context is None and c in "'\"":
            context = c
        elif context is not None and c == context:
            context = None
        out.append(c)
        i += 1
    return "".join(out)


def render_cmd(cfg: JobConfig, paths: Mapping[str, str], *, project_home: str | None = None) -> str:
    """The shell command a job runs: ``cfg.cmd`` with every variable replaced.

    ``paths`` maps variable names of inputs, outputs, S3 mounts, datasets and output datasets
    (an S3 mount or dataset without a var is named by its ID) to server-side paths; ``args``
    come from the config and are inserted verbatim; ``${DS_PROJECT_HOME}`` becomes
    ``project_home`` (needs the ``attach-project-disk`` flag, checked when parsing).
    """
    values: dict[str, str] = dict(paths)
    values.update(cfg.args)
    if DS_PROJECT_HOME in references(cfg.cmd):
        if project_home is None:
            raise Invalid("cmd: ${DS_PROJECT_HOME} needs the project disk path", field="flags")
        values[DS_PROJECT_HOME] = project_home
    return substitute(cfg.cmd, values, verbatim=cfg.args.keys())


def check_unique_variables(cfg: JobConfig) -> None:
    """All variable names (inputs, outputs, s3, datasets, args, output datasets) must differ."""
    seen: dict[str, str] = {}
    groups: list[tuple[str, list[tuple[str, str]]]] = [
        ("inputs", [(f"inputs[{i}]", p.var) for i, p in enumerate(cfg.inputs) if p.var]),
        ("outputs", [(f"outputs[{i}]", p.var) for i, p in enumerate(cfg.outputs) if p.var]),
        ("s3-mounts", [(f"s3-mounts[{i}]", m.name) for i, m in enumerate(cfg.s3_mounts)]),
        ("datasets", [(f"datasets[{i}]", m.name) for i, m in enumerate(cfg.datasets)]),
        ("args", [(f"args.{k}", k) for k in cfg.args]),
        (
            "output-datasets",
            [(f"output-datasets[{i}].var", d.var) for i, d in enumerate(cfg.output_datasets)],
        ),
    ]
    for _, entries in groups:
        for where, name in entries:
            if name in seen:
                raise Invalid(
                    f"{where}: variable {name} is defined twice (also in {seen[name]})", field=where
                )
            seen[name] = where


def check_cmd_references(cfg: JobConfig) -> None:
    """Every ``${VAR}`` in ``cmd`` is defined; ``${DS_PROJECT_HOME}`` needs ``attach-project-disk``."""
    defined = set(cfg.variables)
    for name in references(cfg.cmd):
        if name in RESERVED_VARS:
            if name == DS_PROJECT_HOME and not cfg.attach_project_disk:
                raise Invalid(
                    f"cmd: {DS_PROJECT_HOME} is unavailable without the `{ATTACH_PROJECT_DISK}` flag",
                    field="cmd",
                )
            continue
        if name not in defined:
            raise Invalid(
                f"cmd: ${{{name}}} is not defined in the config (args, inputs, outputs, s3-mounts, datasets, "
                f"output-datasets); write ${name} for a shell variable",
                field="cmd",
            )
