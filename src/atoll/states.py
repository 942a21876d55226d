"""Every state a job, workload, notebook server, notebook run, node, node instance and built-in
environment can be in, with the moves allowed between them: the one place their names are spelled.

A leaf module (it imports nothing of Atoll), so the server, the HTTP client and the CLI share it.
The members are ``StrEnum``s: they are stored, compared and sent as the plain strings DataSphere's
API uses ("SUCCESS", "Healthy"), so a value read back from the database or a JSON answer equals
its member. Each ``*_MOVES`` table says which moves the lifecycle allows (``can_move``): it is
the map to read before adding a state, and tests/unit/test_states.py keeps the tables whole.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

S = TypeVar("S", bound=StrEnum)


class JobStatus(StrEnum):
    """A job (spec §5.6): made, its files prepared and queued, running, its outputs saved, done."""

    CREATING = "CREATING"  # made; waits for its files and `execute`
    PREPARING = "PREPARING"  # environment, dirs and inputs are being made; queued for compute
    EXECUTING = "EXECUTING"
    UPLOADING_OUTPUT = "UPLOADING_OUTPUT"
    CANCELLING = "CANCELLING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"


JOB_TERMINAL = (JobStatus.SUCCESS, JobStatus.ERROR, JobStatus.CANCELLED)
JOB_ACTIVE = (
    JobStatus.CREATING,
    JobStatus.PREPARING,
    JobStatus.EXECUTING,
    JobStatus.UPLOADING_OUTPUT,
    JobStatus.CANCELLING,
)
# The ones the job controller follows (a CREATING job waits for its client, not for compute).
JOB_RUNNING = JOB_ACTIVE[1:]

JOB_MOVES: dict[JobStatus, tuple[JobStatus, ...]] = {
    JobStatus.CREATING: (JobStatus.PREPARING, JobStatus.CANCELLED),
    JobStatus.PREPARING: (JobStatus.EXECUTING, JobStatus.CANCELLING, JobStatus.CANCELLED, *JOB_TERMINAL),
    JobStatus.EXECUTING: (JobStatus.UPLOADING_OUTPUT, JobStatus.CANCELLING, *JOB_TERMINAL),
    JobStatus.UPLOADING_OUTPUT: (JobStatus.CANCELLING, *JOB_TERMINAL),
    JobStatus.CANCELLING: (JobStatus.CANCELLED, JobStatus.ERROR, JobStatus.SUCCESS),
    JobStatus.SUCCESS: (),
    JobStatus.ERROR: (),
    JobStatus.CANCELLED: (),
}


class WorkloadPhase(StrEnum):
    """A workload row (a job run, a notebook server, a node instance) as the controllers see it."""

    QUEUED = "QUEUED"  # waits for the scheduler
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"  # a stop was sent; waits for the runtime to report the end
    EXITED = "EXITED"  # ended with code 0
    FAILED = "FAILED"
    LOST = "LOST"  # the runtime has no record of it any more


WORKLOAD_FINISHED = (WorkloadPhase.EXITED, WorkloadPhase.FAILED, WorkloadPhase.LOST)
WORKLOAD_ACTIVE = (WorkloadPhase.QUEUED, WorkloadPhase.RUNNING, WorkloadPhase.STOPPING)
WORKLOAD_STARTED = (WorkloadPhase.RUNNING, WorkloadPhase.STOPPING)  # a process exists

WORKLOAD_MOVES: dict[WorkloadPhase, tuple[WorkloadPhase, ...]] = {
    WorkloadPhase.QUEUED: (WorkloadPhase.RUNNING, WorkloadPhase.FAILED),
    WorkloadPhase.RUNNING: (WorkloadPhase.STOPPING, *WORKLOAD_FINISHED),
    WorkloadPhase.STOPPING: WORKLOAD_FINISHED,
    WorkloadPhase.EXITED: (),
    WorkloadPhase.FAILED: (),
    WorkloadPhase.LOST: (),
}


class Desired(StrEnum):
    """What a workload's owner wants of it."""

    RUN = "RUN"
    STOP = "STOP"


class NotebookState(StrEnum):
    """A project's JupyterLab server; NONE is the answer for a project that has none."""

    PREPARING = "PREPARING"  # environment, dirs, port
    QUEUED = "QUEUED"  # the scheduler decides
    STARTING = "STARTING"  # the process runs, not answering yet
    READY = "READY"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    NONE = "NONE"  # not a row's state: the API's answer when the project has no server


NOTEBOOK_LIVE = (
    NotebookState.PREPARING,
    NotebookState.QUEUED,
    NotebookState.STARTING,
    NotebookState.READY,
    NotebookState.STOPPING,
)
NOTEBOOK_FINISHED = (NotebookState.STOPPED, NotebookState.FAILED)
NOTEBOOK_WAITING = (NotebookState.PREPARING, NotebookState.QUEUED, NotebookState.STARTING)

NOTEBOOK_MOVES: dict[NotebookState, tuple[NotebookState, ...]] = {
    NotebookState.PREPARING: (NotebookState.QUEUED, NotebookState.STOPPING, *NOTEBOOK_FINISHED),
    NotebookState.QUEUED: (NotebookState.STARTING, NotebookState.STOPPING, *NOTEBOOK_FINISHED),
    NotebookState.STARTING: (NotebookState.READY, NotebookState.STOPPING, *NOTEBOOK_FINISHED),
    NotebookState.READY: (NotebookState.STOPPING, *NOTEBOOK_FINISHED),
    NotebookState.STOPPING: NOTEBOOK_FINISHED,
    NotebookState.STOPPED: (),
    NotebookState.FAILED: (),
    NotebookState.NONE: (),
}


class NotebookRunStatus(StrEnum):
    """A notebook executed by API (spec §4.1)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"


NOTEBOOK_RUN_FINISHED = (NotebookRunStatus.DONE, NotebookRunStatus.FAILED)

NOTEBOOK_RUN_MOVES: dict[NotebookRunStatus, tuple[NotebookRunStatus, ...]] = {
    NotebookRunStatus.PENDING: (NotebookRunStatus.RUNNING, NotebookRunStatus.FAILED),
    NotebookRunStatus.RUNNING: NOTEBOOK_RUN_FINISHED,
    NotebookRunStatus.DONE: (),
    NotebookRunStatus.FAILED: (),
}


class NodeDesired(StrEnum):
    """What a node's owner wants of it."""

    RUN = "RUN"
    SUSPEND = "SUSPEND"
    DELETE = "DELETE"


class NodeStatus(StrEnum):
    """A node (spec §6.1); DELETED is the answer for one that is gone (aliases still name it)."""

    CREATED = "Created"
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    SUSPENDED = "Suspended"
    DELETING = "Deleting"
    DELETED = "Deleted"


NODE_MOVES: dict[NodeStatus, tuple[NodeStatus, ...]] = {
    NodeStatus.CREATED: (NodeStatus.HEALTHY, NodeStatus.SUSPENDED, NodeStatus.DELETING),
    NodeStatus.HEALTHY: (NodeStatus.UNHEALTHY, NodeStatus.CREATED, NodeStatus.SUSPENDED, NodeStatus.DELETING),
    NodeStatus.UNHEALTHY: (NodeStatus.HEALTHY, NodeStatus.CREATED, NodeStatus.SUSPENDED, NodeStatus.DELETING),
    NodeStatus.SUSPENDED: (NodeStatus.CREATED, NodeStatus.HEALTHY, NodeStatus.UNHEALTHY, NodeStatus.DELETING),
    NodeStatus.DELETING: (),  # the row goes once every instance is Deleted
    NodeStatus.DELETED: (),
}


class InstanceStatus(StrEnum):
    """A node instance (spec §6.1): a workload plus the balancer's view of it."""

    UNDEFINED = "Undefined"
    CREATED = "Created"  # its workload waits for the scheduler
    STARTED = "Started"  # its process runs
    PREPARING = "Preparing"  # waits for the health check to pass
    HEALTHY = "Healthy"  # in balancing
    UNHEALTHY = "Unhealthy"
    DELETING = "Deleting"
    DELETED = "Deleted"


INSTANCE_GONE = (InstanceStatus.DELETING, InstanceStatus.DELETED)

INSTANCE_MOVES: dict[InstanceStatus, tuple[InstanceStatus, ...]] = {
    InstanceStatus.UNDEFINED: (
        InstanceStatus.CREATED,
        InstanceStatus.STARTED,
        InstanceStatus.UNHEALTHY,
        *INSTANCE_GONE,
    ),
    InstanceStatus.CREATED: (InstanceStatus.STARTED, InstanceStatus.UNHEALTHY, *INSTANCE_GONE),
    InstanceStatus.STARTED: (
        InstanceStatus.PREPARING,
        InstanceStatus.HEALTHY,
        InstanceStatus.UNHEALTHY,
        *INSTANCE_GONE,
    ),
    InstanceStatus.PREPARING: (InstanceStatus.HEALTHY, InstanceStatus.UNHEALTHY, *INSTANCE_GONE),
    InstanceStatus.HEALTHY: (InstanceStatus.UNHEALTHY, *INSTANCE_GONE),
    InstanceStatus.UNHEALTHY: (
        InstanceStatus.HEALTHY,
        InstanceStatus.STARTED,
        InstanceStatus.CREATED,
        *INSTANCE_GONE,
    ),
    InstanceStatus.DELETING: (InstanceStatus.DELETED,),
    InstanceStatus.DELETED: (),
}


class EnvironmentStatus(StrEnum):
    """A built-in environment on this machine (envs/builtins.py): waiting for its build, being
    built, usable, or its last build failed (built again later, or at the next start)."""

    PENDING = "PENDING"
    BUILDING = "BUILDING"
    READY = "READY"
    FAILED = "FAILED"


ENVIRONMENT_MOVES: dict[EnvironmentStatus, tuple[EnvironmentStatus, ...]] = {
    EnvironmentStatus.PENDING: (EnvironmentStatus.BUILDING, EnvironmentStatus.READY),
    EnvironmentStatus.BUILDING: (EnvironmentStatus.READY, EnvironmentStatus.FAILED),
    EnvironmentStatus.READY: (),  # immutable: a changed lock file is another environment
    EnvironmentStatus.FAILED: (EnvironmentStatus.BUILDING,),
}


def can_move(moves: dict[S, tuple[S, ...]], old: str, new: str) -> bool:
    """Whether ``old`` → ``new`` is allowed by the table ``moves`` (staying put always is)."""
    if old == new:
        return True
    kind = type(next(iter(moves)))
    return kind(new) in moves.get(kind(old), ())


class ImageStatus(StrEnum):
    """A project's Docker image (spec §4.3): waiting for its build, being built, usable (built,
    checked and kept in the registry), or its build failed (the log names the failing step)."""

    PENDING = "PENDING"
    BUILDING = "BUILDING"
    READY = "READY"
    FAILED = "FAILED"
