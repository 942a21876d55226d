"""Run a notebook by API (spec §4.1, ``POST projects/{id}:execute``): the notebook in the project's
storage runs top to bottom as a Workload on the project's configuration, ``inputVariables`` reach
it as env vars, and the values of ``outputVariableNames`` come back when it is done.

The notebook controller prepares and follows these runs (environment, workload, outputs); this
module validates and records the request and shapes the answer as DataSphere's Operation.
"""

from __future__ import annotations

import keyword
import re
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from atoll.domain import tenancy
from atoll.domain.access import Action, Principal
from atoll.domain.notebooks import choose_configuration, require_balance
from atoll.errors import Invalid, NotFound
from atoll.states import NOTEBOOK_RUN_FINISHED, NotebookRunStatus
from atoll.store.tables import NotebookRun, Project, User

MAX_NOTEBOOK_ID = 200  # DataSphere's limit on notebookId
MAX_VARIABLES = 100
MAX_VALUE = 64 * 1024
# Env var names (inputs) and Python variable names (outputs) alike: ASCII word characters.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Env vars a run must not override: they would change how the runner or Python behave.
_RESERVED = frozenset(
    {"PATH", "HOME", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LD_PRELOAD", "LD_LIBRARY_PATH"}
)


def _notebook_path(notebook_id: str) -> str:
    f = "notebookId"
    path = PurePosixPath(notebook_id)
    if not notebook_id or len(notebook_id) > MAX_NOTEBOOK_ID:
        raise Invalid(f"{f} must be 1-{MAX_NOTEBOOK_ID} characters", field=f)
    if path.is_absolute() or ".." in path.parts or "\\" in notebook_id or "\x00" in notebook_id:
        raise Invalid(
            f"{f} must be a path inside the project's storage, such as 'work/report.ipynb'", field=f
        )
    if path.suffix != ".ipynb":
        raise Invalid(f"{f} must name a .ipynb notebook (got {notebook_id!r})", field=f)
    return str(path)


def _inputs(values: dict[str, Any]) -> dict[str, str]:
    f = "inputVariables"
    if len(values) > MAX_VARIABLES:
        raise Invalid(f"{f} may hold at most {MAX_VARIABLES} variables", field=f)
    out: dict[str, str] = {}
    for name, value in values.items():
        if not _NAME.match(name) or name.upper() in _RESERVED or name.startswith(("ATOLL_", "JUPYTER_")):
            raise Invalid(
                f"{f}.{name}: not usable as an environment variable name (letters, digits, underscores; "
                "not PATH, HOME, PYTHON*, ATOLL_* or JUPYTER_*)",
                field=f"{f}.{name}",
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise Invalid(f"{f}.{name} must be a string or a number", field=f"{f}.{name}")
        text = str(value)
        if len(text) > MAX_VALUE or "\x00" in text:
            raise Invalid(
                f"{f}.{name} must be at most {MAX_VALUE} characters, without NUL", field=f"{f}.{name}"
            )
        out[name] = text
    return out


def _outputs(names: list[str]) -> list[str]:
    f = "outputVariableNames"
    if len(names) > MAX_VARIABLES:
        raise Invalid(f"{f} may name at most {MAX_VARIABLES} variables", field=f)
    for n in names:
        if not _NAME.match(n) or keyword.iskeyword(n):
            raise Invalid(f"{f}: {n!r} is not a Python variable name", field=f)
    return list(dict.fromkeys(names))


def execute(
    db: Session,
    p: Principal,
    project_id: str,
    *,
    notebook_id: str,
    input_variables: dict[str, Any],
    output_variable_names: list[str],
    configuration: str | None,
    notebook_exists: Any,
) -> NotebookRun:
    """Queue a run of the notebook (project Developer and up); ``notebook_exists(project, path)``
    says whether the file is in the project's storage."""
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_USE)
    path = _notebook_path(notebook_id)
    inputs = _inputs(input_variables)
    outputs = _outputs(output_variable_names)
    name = choose_configuration(db, project, configuration)
    require_balance(project)
    if not notebook_exists(project, path):
        raise Invalid(f"notebookId: {path!r} is not in the project's storage", field="notebookId")
    run = NotebookRun(
        project_id=project.id,
        notebook_id=path,
        configuration=name,
        input_variables=inputs,
        output_variable_names=outputs,
        created_by=p.user.id,
    )
    db.add(run)
    db.flush()
    return run


def get_run(db: Session, p: Principal, project_id: str, run_id: str) -> tuple[Project, NotebookRun]:
    project = tenancy.get_project(db, p, project_id, Action.PROJECT_VIEW)
    run = db.get(NotebookRun, run_id)
    if run is None or run.project_id != project.id:
        raise NotFound(f"execution {run_id!r} not found in this project")
    return project, run


def operation(db: Session, run: NotebookRun) -> dict[str, Any]:
    """The run as DataSphere's Operation: ``done``, then ``response`` or ``error``."""
    creator = db.get(User, run.created_by)
    done = run.status in NOTEBOOK_RUN_FINISHED
    return {
        "id": run.id,
        "description": f"execute notebook {run.notebook_id}",
        "createdAt": run.created_at,
        "createdBy": creator.username if creator else None,
        "done": done,
        "metadata": {
            "projectId": run.project_id,
            "notebookId": run.notebook_id,
            "status": run.status,
            "configuration": run.configuration,
            "workloadId": run.workload_id,
        },
        "response": {"outputVariables": run.output_variables}
        if run.status == NotebookRunStatus.DONE
        else None,
        "error": {"message": run.error} if run.status == NotebookRunStatus.FAILED else None,
    }
