"""Sub-commands imported only when used, so that `atoll --help` or `atoll job list` does not pay
for every noun's module (and the libraries behind them) at each start.

A group made by ``lazy_group`` lists its lazy sub-commands by their one-line summary, taken from
the table here (no import), and imports a sub-command's module the first time it is resolved.
The summaries live here once: each module's Typer app takes its help from ``summary(name)``.
This module imports nothing heavy itself: it is on the path of every `atoll` start.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperGroup


@dataclass(frozen=True)
class Lazy:
    """A sub-command not imported yet: ``target`` is "module:attr", a Typer app (a group) or a
    function (one command); ``summary`` is what the parent's help lists beside its name."""

    target: str
    summary: str


# `atoll <name>`, in the order `atoll --help` lists them (after up, down and version).
ROOT: dict[str, Lazy] = {
    "login": Lazy(
        "atoll.cli.auth:login",
        "Sign in: trade a username and password (or check a token) and save URL + token.",
    ),
    "logout": Lazy(
        "atoll.cli.auth:logout", "Revoke the saved token on the server (when possible) and forget it."
    ),
    "whoami": Lazy("atoll.cli.auth:whoami", "Show who the CLI acts as, and where."),
    "doctor": Lazy(
        "atoll.cli.doctor:doctor",
        "Check what this installation can do: database, data dir, limits, CPUs/GPUs, server.",
    ),
    "generate-requirements": Lazy(
        "atoll.cli.jobs:generate_requirements",
        "Write the pinned requirements that the given root modules import (as env.python: auto finds them).",
    ),
    "org": Lazy(
        "atoll.cli.orgs:app", "Organizations: every community, group and billing account belongs to one."
    ),
    "community": Lazy(
        "atoll.cli.communities:app", "Communities: teams of an organization; projects live in them."
    ),
    "project": Lazy(
        "atoll.cli.projects:app", "Projects: the workspace where notebooks, jobs and deployments live."
    ),
    "notebook": Lazy("atoll.cli.notebooks:app", "A project's JupyterLab server: open, stop, status."),
    "member": Lazy(
        "atoll.cli.members:app",
        "Role bindings. Give exactly one scope: --org, --community/-c, --project/-p or --billing-account.",
    ),
    "invite": Lazy(
        "atoll.cli.invites:app", "Invite links: whoever opens one joins the community or project."
    ),
    "group": Lazy(
        "atoll.cli.groups:app", "Groups of users; grant a role to a group with `atoll member add --group`."
    ),
    "config": Lazy("atoll.cli.configs:app", "Compute configurations: vCPU, RAM, GPUs and units per second."),
    "env": Lazy("atoll.cli.environments:app", "Environments: locked package sets notebooks and jobs run in."),
    "image": Lazy("atoll.cli.images:app", "Docker images of a project: build from a Dockerfile, activate."),
    "token": Lazy(
        "atoll.cli.tokens:app", "Personal API tokens. Use one with ATOLL_TOKEN=… or `atoll login --token`."
    ),
    "billing-account": Lazy(
        "atoll.cli.billing:app", "Billing accounts: one pays for each community's units."
    ),
    "user": Lazy("atoll.cli.users:app", "User accounts."),
    "audit": Lazy("atoll.cli.audit:app", "An organization's audit log: who did what, when, from where."),
    "sso": Lazy("atoll.cli.sso:app", "Single sign-on: the identity providers users sign in with (admins)."),
    "secret": Lazy(
        "atoll.cli.secrets:app", "Project secrets: encrypted at rest, exposed to workloads as env vars."
    ),
    "job": Lazy(
        "atoll.cli.jobs:app",
        "DataSphere Jobs: run programs from your machine on project compute, get the results back.",
    ),
    "node": Lazy(
        "atoll.cli.nodes:app",
        "Nodes: models, commands or Docker images served by instances behind the gateway.",
    ),
    "alias": Lazy(
        "atoll.cli.aliases:app", "Aliases: publish nodes under one name and split requests by weight."
    ),
    "model": Lazy(
        "atoll.cli.models:app",
        "Saved models: list, inspect, delete (deploy them with `atoll node create --model`).",
    ),
    "dataset": Lazy(
        "atoll.cli.datasets:app", "Datasets made by jobs (output-datasets): list, inspect, delete."
    ),
}

# `atoll project <name>`: the jobs' long form (spec §5), beside the project's own commands.
PROJECT: dict[str, Lazy] = {"job": ROOT["job"]}


def summary(name: str) -> str:
    """The help of `atoll <name>`, for the module that defines it."""
    return ROOT[name].summary


class _NotLoaded(typer.core.TyperCommand):
    """Stands in a group's listing for a sub-command whose module is not imported yet."""

    def __init__(self, name: str, lazy: Lazy) -> None:
        super().__init__(name=name, help=lazy.summary, short_help=lazy.summary)
        self.lazy = lazy

    def load(self) -> Any:
        module, _, attr = self.lazy.target.partition(":")
        found = getattr(importlib.import_module(module), attr)
        if isinstance(found, typer.Typer):
            command = typer.main.get_command(found)
        else:  # a function: one command, listed with the summary above
            one = typer.Typer()
            one.command(self.name, short_help=self.lazy.summary)(found)
            command = typer.main.get_command(one)
        command.name = self.name
        return command


def lazy_group(entries: Mapping[str, Lazy]) -> type[TyperGroup]:
    """A Typer group class (``typer.Typer(cls=...)``) with ``entries`` as lazy sub-commands."""

    class LazyGroup(TyperGroup):
        _listing = False  # formatting help: list the summaries, import nothing

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for name, lazy in entries.items():
                self.commands.setdefault(name, _NotLoaded(name, lazy))

        def get_command(self, ctx: Any, cmd_name: str) -> Any:
            command = self.commands.get(cmd_name)
            if isinstance(command, _NotLoaded) and not self._listing:
                command = self.commands[cmd_name] = command.load()
            return command

        def format_help(self, ctx: Any, formatter: Any) -> None:
            self._listing = True
            try:
                super().format_help(ctx, formatter)
            finally:
                self._listing = False

    return LazyGroup
