"""The CLI imports a noun's module only when that noun is used (atoll/cli/lazy.py): `atoll --help`
and `atoll version` load no HTTP client, no job code, no table library; every listed command
still resolves to the real one, with the summary its help shows."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
import typer

from atoll.cli.lazy import PROJECT, ROOT, _NotLoaded

HEAVY = ("httpx", "atoll.client", "atoll.cli.jobs", "atoll.cli.projects", "atoll.jobspec", "yaml")


def _loaded_after(args: list[str]) -> tuple[int, str, list[str]]:
    """Run the CLI on ``args`` in a fresh interpreter; its status, output and heavy modules loaded."""
    code = (
        "import sys, json, contextlib, io\n"
        "from atoll.cli.main import run\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        f"    rc = run({args!r})\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps([rc, buf.getvalue(), heavy]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    rc, out, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    return rc, out, heavy


@pytest.mark.parametrize("args", [["--help"], ["version"], ["project", "--help"]])
def test_a_start_that_needs_no_server_imports_nothing_heavy(args: list[str]) -> None:
    rc, out, heavy = _loaded_after(args)
    assert rc == 0, out
    if args[0] == "project":  # the noun's own module and client, not the jobs beside it
        heavy = [m for m in heavy if m.startswith(("atoll.cli.jobs", "atoll.jobspec", "yaml"))]
    assert heavy == [], f"`atoll {' '.join(args)}` imported {heavy}"
    if args == ["--help"]:
        for name in ROOT:  # every noun is listed, by name
            assert name in out, name
    if args[0] == "project":
        assert "job" in out and "DataSphere Jobs" in out  # listed, not imported


def test_a_used_noun_imports_its_module() -> None:
    rc, _, heavy = _loaded_after(["job", "--help"])
    assert rc == 0
    assert "atoll.cli.jobs" in heavy and "atoll.client" in heavy


@pytest.mark.parametrize("name", [*ROOT, *(f"project {n}" for n in PROJECT)])
def test_every_listed_command_loads_with_the_summary_it_is_listed_with(name: str) -> None:
    *parent, leaf = name.split()
    table = PROJECT if parent else ROOT
    command = _NotLoaded(leaf, table[leaf]).load()
    assert command.name == leaf
    module, _, attr = table[leaf].target.partition(":")
    found = getattr(sys.modules[module], attr)
    if isinstance(found, typer.Typer):
        assert found.info.help == table[leaf].summary
        assert isinstance(command, typer.core.TyperGroup) and command.commands, name
    else:  # a single command: its docstring's first sentence is the summary
        first = " ".join((inspect.getdoc(found) or "").split("\n\n")[0].split())
        assert first == table[leaf].summary
        assert command.short_help == table[leaf].summary
