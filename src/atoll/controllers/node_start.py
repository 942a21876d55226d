"""Starting one node instance: what it runs (the model server with its models, a command, an
image), in which environment, and its Workload."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from atoll.controllers.environments import EnvironmentChoice
from atoll.domain import environments, images, model_registry
from atoll.domain.workloads import WorkloadSpec, run_identity, submit
from atoll.envs import builtins
from atoll.envs.build import EnvironmentBuilder
from atoll.envs.interpreter import current_version
from atoll.envs.sdk import sdk_path
from atoll.notebooks.server import pick_port
from atoll.runtime.base import DEFAULT_PATH
from atoll.states import INSTANCE_GONE, InstanceStatus, NodeDesired
from atoll.storage.blobs import BlobStore
from atoll.storage.layout import DataLayout
from atoll.store.db import Database
from atoll.store.tables import Model, Node, NodeInstance, Project, PythonEnvSpec


class InstanceStarter:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        envs: EnvironmentBuilder,
        data_dir: Path,
        project_home: Callable[[str, tuple[int, int] | None], Path],
        uid_base: int,
        notify: Callable[[str], None],
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.envs = envs
        self.data_dir = data_dir
        self.project_home = project_home
        self.uid_base = uid_base
        self.notify = notify

    def start(self, instance_id: str) -> None:
        """Build what the instance runs and submit its Workload (the scheduler admits it)."""
        with self.db.transaction() as s:
            inst = s.get(NodeInstance, instance_id)
            node = s.get(Node, inst.node_id) if inst else None
            if inst is None or node is None or inst.workload_id or inst.status in INSTANCE_GONE:
                return
            project_id, node_id, kind, spec = node.project_id, node.id, node.kind, dict(node.spec)
            run_as = run_identity(s, project_id, self.uid_base)
            models = [s.get(Model, mid) for mid in spec.get("models", [])]
            if any(m is None for m in models):
                raise RuntimeError("a model this node serves was deleted")
            for m in models:
                assert m is not None
                s.expunge(m)
            project_row = s.get(Project, project_id)
            env_row = environments.of_project(s, project_row) if project_row is not None else None
            choice = EnvironmentChoice.of(env_row) if env_row is not None else None
        port = pick_port()
        python: PythonEnvSpec | None = None
        grpc_port: int | None = None
        side_ports: dict[str, int] = {}
        env = {"PATH": DEFAULT_PATH, **spec.get("env", {})}
        image: str | None = None
        container_port = port
        home = self.project_home(project_id, run_as)
        workdir = home
        if kind == "model":
            # The model server's second face, KServe v2 / Triton gRPC, on a port of its own.
            grpc_port = _another_port({port})
            command, env = self._model_server(
                [m for m in models if m is not None], port, grpc_port, env, node_id, project_id, run_as
            )
            workdir = self._node_dir(project_id, node_id)
        elif kind == "command":
            # No shell runs it: $PORT (and ${PORT}) in an argument is the instance's port.
            command = [a.replace("${PORT}", str(port)).replace("$PORT", str(port)) for a in spec["command"]]
            # In the project's environment (its setting, else the default built-in one), as its
            # notebooks and jobs: `python` and the packages' commands are that environment's.
            built = (choice.realize(self.envs) if choice else builtins.DEFAULT.build(self.envs)).python_env()
            python = PythonEnvSpec(prefix=str(built.prefix), venv=built.venv)
        else:  # an image: its own server on spec port, published on the instance's port
            command = list(spec.get("command") or [])
            image, container_port = spec["image"], int(spec["port"])
            # Its own health-check and telemetry ports are published on loopback ports too.
            for own in {(spec.get(k) or {}).get("port") for k in ("healthCheck", "telemetry")}:
                if own and own != container_port:
                    side_ports[str(own)] = _another_port({port, *side_ports.values()})
            if "PATH" not in spec.get("env", {}):
                env.pop("PATH")  # the image knows where its programs are
            workdir = self._node_dir(project_id, node_id)
        env["ATOLL_PROJECT_ID"] = project_id
        env["ATOLL_NODE_ID"] = node_id
        env["ATOLL_INSTANCE_ID"] = instance_id
        env["DS_PROJECT_HOME"] = str(home)
        with self.db.transaction() as s:
            inst = s.get(NodeInstance, instance_id)
            node = s.get(Node, node_id)
            project = s.get(Project, project_id)
            if inst is None or node is None or project is None or inst.workload_id:
                return
            if inst.status in INSTANCE_GONE or node.desired != NodeDesired.RUN:
                return
            if image:  # one of the project's images (by id or name[:tag]) runs by its content id
                image = images.runnable(s, project, image) or image
            wl = submit(
                s,
                project,
                kind="node",
                owner_id=node.created_by or "",
                configurations=[node.configuration],
                spec=WorkloadSpec(
                    command=command,
                    workdir=workdir,
                    env=env,
                    mounts=[],
                    # Every port the instance listens on, published or isolated alike by runtimes.
                    ports=[port, *([grpc_port] if grpc_port else []), *side_ports.values()],
                    image=image,
                    container_ports=[container_port, *map(int, side_ports)] if image else [],
                    python=python,
                ),
                stop_signal=int(signal.SIGTERM),
                stop_grace_s=10.0,
            )
            inst.workload_id, inst.port, inst.grpc_port = wl.id, port, grpc_port
            inst.side_ports = side_ports
            inst.workload_ids = [*inst.workload_ids[-9:], wl.id]
            inst.status = InstanceStatus.CREATED if inst.status == InstanceStatus.UNDEFINED else inst.status
            inst.detail = "waiting for the scheduler"
        self.notify("workloads")

    def _node_dir(self, project_id: str, node_id: str) -> Path:
        """A node's working dir (its instances', handed to the project's user by the runtime)."""
        layout = DataLayout(self.data_dir)
        workdir = layout.node(project_id, node_id)
        layout.passage(workdir.parent)
        workdir.mkdir(exist_ok=True)
        return workdir

    def _model_server(
        self,
        models: list[Model],
        port: int,
        grpc_port: int,
        env: dict[str, str],
        node_id: str,
        project_id: str,
        run_as: tuple[int, int] | None,
    ) -> tuple[list[str], dict[str, str]]:
        """The model server's command: an environment with the models' libraries, their files."""
        from atoll.serving import requirements

        reqs = requirements([model_registry.model_meta(m) for m in models])
        environment = self.envs.build(current_version(), reqs)
        root = self.data_dir / "models"
        root.mkdir(exist_ok=True)
        root.chmod(0o711 if run_as else 0o700)  # passed through by model servers, never listed
        args: list[str] = []
        for m in models:
            # Readable by the project's model servers (their group) and nobody else.
            path = model_registry.materialize(self.blobs, m, root / m.id, run_as[1] if run_as else None)
            args += ["--model", f"{m.name}={path}"]
        self._node_dir(project_id, node_id)
        env = environment.activate(env)
        env["PYTHONPATH"] = str(sdk_path(self.data_dir))
        # It binds to $HOST: 127.0.0.1, or its Ray node's address on a cluster.
        command = [str(environment.python), "-m", "atoll.serving", "--port", str(port)]
        command += ["--grpc-port", str(grpc_port)]
        return command + args, env


def _another_port(taken: set[int]) -> int:
    """A free port that is none of ``taken`` (picked, not yet bound, ones)."""
    while (chosen := pick_port()) in taken:
        pass
    return chosen
