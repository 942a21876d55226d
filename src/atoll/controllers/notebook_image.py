"""A notebook server inside the project's activated Docker image (spec §4.3 "Activate").

The container runs the image's own python3. When the image has JupyterLab, that one serves; else
Atoll's notebook layer (the project's environment, JupyterLab and the data-science stack) is
bound read-only into it and put on its PYTHONPATH, which needs the image's Python to be of the
same major.minor as the layer's. The server's Jupyter state (config, kernels' connection files)
stays in Atoll's project directory, bound into the home at ``STATE_TARGET``; the home is the
container's working dir at its own path, as in every other notebook. JupyterLab listens on all of
the container's addresses: Docker publishes that port on the host's loopback only, where Atoll's
gateway reaches it (with the server's secret).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from atoll.domain.workloads import MountSpec, PythonEnvSpec
from atoll.envs.build import Environment, site_packages
from atoll.errors import Invalid
from atoll.notebooks.server import jupyter_command
from atoll.runtime.docker.container_spec import PYTHON_ENV_TARGET
from atoll.store.tables import ProjectImage

STATE_TARGET = ".atoll-jupyter"


@dataclass(frozen=True)
class ActiveImage:
    """What a notebook needs of the project's active image (read inside a session)."""

    image_id: str
    name: str
    python_version: str
    has_jupyterlab: bool

    @staticmethod
    def of(row: ProjectImage) -> ActiveImage:
        return ActiveImage(row.image_id, f"{row.name}:{row.tag}", row.python_version, row.has_jupyterlab)


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


@dataclass(frozen=True)
class ImageServer:
    argv: list[str]
    env: dict[str, str]  # Jupyter's variables, SECRET_ENV among them
    mounts: list[MountSpec]
    python: PythonEnvSpec | None


def image_server(
    image: ActiveImage,
    layer: Environment | None,
    port: int,
    base_url: str,
    home: Path,
    token: str,
    state_dir: Path,
) -> ImageServer:
    """argv, env and mounts of JupyterLab in ``image``; ``layer``: Atoll's notebook environment,
    needed when the image has no JupyterLab. Invalid when the layer cannot serve in it."""
    python: PythonEnvSpec | None = None
    if not image.has_jupyterlab:
        if layer is None:
            raise Invalid(f"image {image.name} has no JupyterLab", field="activeImageId")
        ours = site_packages(layer.path).parent.name.removeprefix("python")
        if _minor(image.python_version) != ours:
            raise Invalid(
                f"image {image.name} has Python {image.python_version} and no JupyterLab; Atoll's "
                f"notebook layer is built for Python {ours}: install JupyterLab in the image "
                f"(RUN python3 -m pip install jupyterlab) or start FROM a Python {ours} image",
                field="activeImageId",
            )
        python = PythonEnvSpec(prefix=str(layer.path), venv=True)
    argv, env = jupyter_command(Path("python3"), port, base_url, home, token, state_dir)
    argv.append("--ServerApp.ip=0.0.0.0")  # the container's own addresses; published on loopback only
    inside = str(home / STATE_TARGET)
    env = {k: v.replace(str(state_dir), inside) for k, v in env.items()}
    if python is not None:  # the layer's server and lab extensions (terminals, Git, widgets)
        mounted = home / PYTHON_ENV_TARGET
        env["JUPYTER_CONFIG_PATH"] = str(mounted / "etc" / "jupyter")
        env["JUPYTER_PATH"] = str(mounted / "share" / "jupyter")
    mounts = [MountSpec(source=str(state_dir), target=STATE_TARGET)]
    return ImageServer(argv, env, mounts, python)
