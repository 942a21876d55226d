"""The states module is the one place state names are spelled, and its transition tables are whole."""

from __future__ import annotations

import ast
import json
import re
from enum import StrEnum
from pathlib import Path

import pytest

from atoll import states
from atoll.states import (
    ENVIRONMENT_MOVES,
    INSTANCE_MOVES,
    JOB_MOVES,
    JOB_TERMINAL,
    NODE_MOVES,
    NOTEBOOK_MOVES,
    NOTEBOOK_RUN_MOVES,
    WORKLOAD_MOVES,
    InstanceStatus,
    JobStatus,
    NotebookState,
    WorkloadPhase,
    can_move,
)

SRC = Path(states.__file__).parent
TABLES = [
    JOB_MOVES,
    WORKLOAD_MOVES,
    NOTEBOOK_MOVES,
    NOTEBOOK_RUN_MOVES,
    NODE_MOVES,
    INSTANCE_MOVES,
    ENVIRONMENT_MOVES,
]
# Words that are also HTTP methods or Docker's field names; they name no state where they appear.
NOT_STATES = {"DELETE", "Created"}


@pytest.mark.parametrize("moves", TABLES, ids=lambda t: type(next(iter(t))).__name__)
def test_every_state_has_its_moves_and_targets_are_states(moves: dict[StrEnum, tuple[StrEnum, ...]]) -> None:
    kind = type(next(iter(moves)))
    assert set(moves) == set(kind), f"{kind.__name__}: states without a row"
    for old, targets in moves.items():
        assert all(isinstance(t, kind) for t in targets), old
        assert old not in targets, f"{old} lists itself"


def test_finished_states_are_final_and_can_move_reads_strings() -> None:
    assert all(JOB_MOVES[s] == () for s in JOB_TERMINAL)
    assert can_move(JOB_MOVES, "PREPARING", "EXECUTING") and not can_move(JOB_MOVES, "SUCCESS", "EXECUTING")
    assert can_move(WORKLOAD_MOVES, "RUNNING", "RUNNING")  # staying put
    assert not can_move(NOTEBOOK_MOVES, "STOPPED", "READY")
    with pytest.raises(ValueError):
        can_move(JOB_MOVES, "PREPARING", "NOT-A-STATE")


def test_members_are_the_strings_the_api_and_database_use() -> None:
    assert JobStatus.SUCCESS == "SUCCESS" and json.dumps([InstanceStatus.HEALTHY]) == '["Healthy"]'
    assert f"{NotebookState.READY}" == "READY" and WorkloadPhase("LOST") is WorkloadPhase.LOST


def test_no_state_name_is_spelled_outside_the_states_module() -> None:
    names = {
        m.value
        for v in vars(states).values()
        if isinstance(v, type) and issubclass(v, StrEnum) and v is not StrEnum
        for m in v
    }
    names -= NOT_STATES
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "states.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value!r}")
    for path in sorted((SRC / "web" / "templates").glob("*.html")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for lit in re.findall(r"[\"']([A-Za-z_]+)[\"']", line):
                if lit in names:
                    found.append(f"{path.relative_to(SRC)}:{n}: {lit!r}")
    assert not found, "state names spelled outside atoll/states.py:\n" + "\n".join(found)
