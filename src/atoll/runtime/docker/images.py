"""Building a project's Docker image from its Dockerfile on the installation's Docker daemon.

The build goes through the Engine API (the `docker` SDK), with the Dockerfile as the whole build
context (DataSphere's form has no files beside it). Its output is handed on line by line as it
comes, so the images controller can show progress and keep the log; a failing step is named
("Step 3/4 : RUN make") with the daemon's message. A built image is then checked: Atoll runs
python3 in it (notebooks, jobs) and installs with pip, so both must be there, and the message
says which is missing. Last it is tagged and pushed to the registry, when the installation has one.

Images are labelled with their project (``PROJECT_LABEL``). That label is how the Docker runtime
refuses to run one project's image for another, under whatever name or id it is given, and how a
Dockerfile is refused a FROM of another project's image; a FROM naming Atoll's registry (or any
loopback one) outside the project's own path is refused too, so a build cannot pull another
project's image from there.
"""

from __future__ import annotations

import contextlib
import io
import re
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
from docker import auth as docker_auth
from docker.errors import APIError, ContainerError, DockerException, ImageNotFound

PROJECT_LABEL = "atoll.image.project"
MAX_DOCKERFILE = 64 * 1024
_STEP = re.compile(r"^Step \d+/\d+ : ")
_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)
_COPY_FROM = re.compile(r"^\s*(?:COPY|ADD)\b.*--from=(\S+)", re.IGNORECASE)
_LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$", re.IGNORECASE)
# One shell line: what is missing, then the Python version (sh is there in any image Atoll can use).
_CHECK = (
    "command -v python3 >/dev/null 2>&1 || { echo 'missing: python3'; exit 3; }; "
    "python3 -m pip --version >/dev/null 2>&1 || { echo 'missing: pip'; exit 4; }; "
    "python3 -c 'import platform; print(platform.python_version())'; "
    "python3 -c 'import jupyterlab' >/dev/null 2>&1 && echo jupyterlab || echo no-jupyterlab"
)


class ImageBuildFailed(Exception):
    """The build (or its check, or its push) failed; ``step`` is the failing Dockerfile step, if any."""

    def __init__(self, message: str, step: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.step = step


@dataclass(frozen=True)
class Credentials:
    """For a private base image: the registry they are for, and a user name and password."""

    registry: str
    username: str
    password: str


@dataclass(frozen=True)
class BuildRequest:
    project_id: str
    dockerfile: str
    local_tag: str  # repository:tag on the daemon, e.g. atoll/prj_x/tensorflow:1.0
    registry: str = ""  # host:port[/path] to push to; empty: the image stays on the daemon
    credentials: Credentials | None = None
    network: str | None = None  # the project's Docker network, where it has one
    memory_mb: int = 4096
    timeout_s: float = 1800.0


@dataclass(frozen=True)
class BuiltImage:
    image_id: str  # sha256:..., what workloads run
    reference: str  # where it is kept: the registry's reference, or the local tag
    python_version: str
    size_bytes: int
    has_jupyterlab: bool  # its own JupyterLab; else notebooks get Atoll's, mounted read-only


def _logical_lines(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    out: list[str] = []
    pending = ""
    for raw in dockerfile.splitlines():
        if raw.lstrip().startswith("#") and not pending:
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        out.append(pending + raw)
        pending = ""
    if pending:
        out.append(pending)
    return out


def base_images(dockerfile: str) -> list[str]:
    """The images a Dockerfile builds from (FROM, COPY --from=), less its own stages by name."""
    stages: set[str] = set()
    found: list[str] = []
    for line in _logical_lines(dockerfile):
        m = _FROM.match(line)
        if m:
            ref, alias = m.group(1), m.group(2)
            if ref.lower() not in stages:
                found.append(ref)
            if alias:
                stages.add(alias.lower())
            continue
        m = _COPY_FROM.match(line)
        if m and m.group(1).lower() not in stages and not m.group(1).isdigit():
            found.append(m.group(1))
    return found


def check_dockerfile(dockerfile: str) -> list[str]:
    """The base images a Dockerfile names; ValueError (a one-line reason) when it cannot be built."""
    if len(dockerfile.encode()) > MAX_DOCKERFILE:
        raise ValueError(f"at most {MAX_DOCKERFILE // 1024} KiB")
    if "\0" in dockerfile:
        raise ValueError("a NUL character is not allowed")
    bases = base_images(dockerfile)
    if not bases:
        raise ValueError("no FROM instruction: a Dockerfile starts from a base image")
    for ref in bases:
        if "$" in ref:
            raise ValueError(f"{ref!r}: a variable in FROM is not allowed here; name the base image")
    for line in _logical_lines(dockerfile):
        # The daemon itself fetches an ADD's URL, from its host's network (where Atoll's own
        # services listen); the Dockerfile is the whole context, so ADD has nothing else to add.
        if line.split()[:1] and line.split()[0].upper() == "ADD":
            raise ValueError(
                f"{line.strip()[:120]!r}: ADD is not allowed here (a URL would be fetched from the "
                "daemon's host); use RUN curl or wget, which run in the project's network, or COPY --from"
            )
    return bases


def registry_of(ref: str) -> str:
    """The registry host of an image reference ("" for Docker Hub)."""
    first, sep, _ = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return ""


def tag_parts(reference: str) -> tuple[str, str]:
    repo, _, tag = reference.rpartition(":")
    return (repo, tag) if repo and "/" not in tag else (reference, "latest")


class _BuildApi(docker.APIClient):
    """The Engine API client of one build. A build's base images are the project's to name, so
    it sends the daemon only the credentials given for this build: never those of the server's
    user (docker-py would otherwise read ~/.docker/config.json and send every one it finds)."""

    build_auth: dict[str, dict[str, str]] = {}

    def _set_auth_headers(self, headers: dict[str, Any]) -> None:
        if self.build_auth:
            headers["X-Registry-Config"] = docker_auth.encode_header(self.build_auth)


class ImageBuilder:
    """Builds, checks and pushes project images on one Docker daemon (see the module docstring)."""

    def __init__(self, base_url: str, own_registry: str = "") -> None:
        self.base_url = base_url
        self.own_registry = own_registry.rstrip("/")

    def _client(self, timeout: float, credentials: Credentials | None = None) -> docker.DockerClient:
        """A client per build: the registry credentials it sends are this build's alone."""
        client = docker.DockerClient(base_url=self.base_url, timeout=int(timeout))
        api = _BuildApi(base_url=self.base_url, version=client.api.api_version, timeout=int(timeout))
        api.build_auth = {}
        if credentials is not None:
            entry = {"username": credentials.username, "password": credentials.password}
            hosts = (
                [credentials.registry]
                if credentials.registry
                else [docker_auth.INDEX_URL, docker_auth.INDEX_NAME]
            )
            api.build_auth = {h: dict(entry) for h in hosts}
        client.api.close()
        client.api = api
        return client

    def _refuse_foreign(self, req: BuildRequest, ref: str) -> None:
        """A base image in Atoll's registry (or any loopback one) outside the project's own path
        is refused before anything is pulled; one on the daemon is checked by ``_base``."""
        host = registry_of(ref)
        own = f"{self.own_registry}/atoll/{req.project_id}/" if self.own_registry else ""
        ours = bool(self.own_registry) and host == registry_of(self.own_registry + "/x")
        if (ours or _LOOPBACK.match(host)) and not (own and ref.startswith(own)):
            raise ImageBuildFailed(
                f"base image {ref!r}: images of Atoll's registry are the projects' own; "
                "name one of this project's images, or an image of another registry"
            )

    def _base(
        self, client: docker.DockerClient, req: BuildRequest, ref: str, on_output: Callable[[str], None]
    ) -> None:
        """Have the base image on the daemon (pulled with this build's credentials only), and
        refuse it when it is another project's or carries ONBUILD triggers that would fetch from
        the daemon's host (ADD) or copy from another image (--from) during this build."""
        if ref.lower() == "scratch":
            return
        try:
            image = client.images.get(ref)
        except ImageNotFound:
            image = None
        if image is None:
            c = req.credentials
            given = c is not None and registry_of(ref) == c.registry
            auth = {"username": c.username, "password": c.password} if c is not None and given else {}
            on_output(f"pulling {ref}\n")
            try:
                self._pull(client, ref, auth, on_output)
                image = client.images.get(ref)
            except (APIError, ImageNotFound) as e:  # refused at once: unknown, or not signed in
                message = str(getattr(e, "explanation", None) or e)
                raise ImageBuildFailed(f"pulling {ref}: {message.strip()}", step=f"FROM {ref}") from None
        if (image.labels or {}).get(PROJECT_LABEL, req.project_id) != req.project_id:
            raise ImageBuildFailed(f"base image {ref!r} was not found")
        for trigger in image.attrs.get("Config", {}).get("OnBuild") or []:
            words = str(trigger).split()
            if words and (words[0].upper() == "ADD" or "--from" in str(trigger).lower()):
                raise ImageBuildFailed(
                    f"base image {ref!r} has the trigger ONBUILD {str(trigger)[:200]!r}: ADD and --from "
                    "in a base's ONBUILD are not allowed here"
                )

    @staticmethod
    def _pull(
        client: docker.DockerClient, ref: str, auth: dict[str, str], on_output: Callable[[str], None]
    ) -> None:
        for chunk in client.api.pull(ref, stream=True, decode=True, auth_config=auth):
            if "error" in chunk or "errorDetail" in chunk:
                message = str((chunk.get("errorDetail") or {}).get("message") or chunk.get("error"))
                raise ImageBuildFailed(f"pulling {ref}: {message.strip()}", step=f"FROM {ref}")
            if "status" in chunk and not chunk.get("progressDetail"):
                on_output(f"{chunk.get('id', '')} {chunk['status']}\n".lstrip())

    def build(self, req: BuildRequest, on_output: Callable[[str], None]) -> BuiltImage:
        """Build, check and push; ``on_output`` gets the build's output as it comes. Raises
        ImageBuildFailed with the failing step and the daemon's message."""
        try:
            bases = check_dockerfile(req.dockerfile)
        except ValueError as e:
            raise ImageBuildFailed(f"Dockerfile: {e}") from None
        client = self._client(req.timeout_s, req.credentials)
        try:
            for ref in bases:
                self._refuse_foreign(req, ref)
            if req.credentials is not None:
                c = req.credentials
                try:
                    client.login(c.username, c.password, registry=c.registry or None, reauth=True)
                except APIError as e:
                    where = c.registry or "Docker Hub"
                    raise ImageBuildFailed(
                        f"signing in to {where} as {c.username!r} failed: {e.explanation}"
                    ) from None
            for ref in bases:
                self._base(client, req, ref, on_output)
            image_id = self._build(client, req, on_output)
            version, jupyter = self._check(client, image_id)
            has = "its own JupyterLab" if jupyter else "no JupyterLab (notebooks get Atoll's)"
            on_output(f"checked: Python {version} and pip are present; {has}\n")
            reference = self._push(client, req, image_id, on_output) if req.registry else req.local_tag
            size = int(client.images.get(image_id).attrs.get("Size") or 0)
            return BuiltImage(image_id, reference, version, size, jupyter)
        except DockerException as e:
            raise ImageBuildFailed(f"the Docker daemon at {self.base_url}: {e}") from None
        finally:
            client.close()

    def _build(self, client: docker.DockerClient, req: BuildRequest, on_output: Callable[[str], None]) -> str:
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            data = req.dockerfile.encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
        context.seek(0)
        memory = req.memory_mb << 20
        stream = client.api.build(
            fileobj=context,
            custom_context=True,
            tag=req.local_tag,
            rm=True,
            forcerm=True,  # a failed step's container goes too
            decode=True,
            labels={PROJECT_LABEL: req.project_id},
            network_mode=req.network,
            container_limits={"memory": memory, "memswap": memory},
            timeout=int(req.timeout_s),
        )
        step, image_id, deadline = "", "", time.monotonic() + req.timeout_s
        for chunk in stream:
            if time.monotonic() > deadline:
                raise ImageBuildFailed(f"the build took longer than {req.timeout_s:g} s", step)
            if "error" in chunk or "errorDetail" in chunk:
                message = str((chunk.get("errorDetail") or {}).get("message") or chunk.get("error"))
                on_output(f"ERROR: {message}\n")
                raise ImageBuildFailed(message.strip(), step)
            text = chunk.get("stream")
            if isinstance(text, str):
                for line in text.splitlines():
                    if _STEP.match(line):
                        step = line.strip()
                on_output(text)
            elif "status" in chunk and not chunk.get("progressDetail"):  # a base image's pull
                on_output(f"{chunk.get('id', '')} {chunk['status']}\n".lstrip())
            aux = chunk.get("aux")
            if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
                image_id = aux["ID"]
        if not image_id:
            image_id = str(client.images.get(req.local_tag).id)
        return image_id

    @staticmethod
    def _check(client: docker.DockerClient, image_id: str) -> tuple[str, bool]:
        """The image's Python version and whether it has JupyterLab; ImageBuildFailed saying
        what is missing."""
        try:
            out = client.containers.run(
                image_id,
                ["sh", "-c", _CHECK],
                entrypoint=[],
                remove=True,
                network_disabled=True,
                mem_limit=512 << 20,
                stdout=True,
                stderr=True,
            )
            text = out.decode(errors="replace").strip()
        except ContainerError as e:
            said = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else ""
            code = e.exit_status
            what = {3: "python3", 4: "pip (python3 -m pip)"}.get(code)
            if what is None:
                raise ImageBuildFailed(
                    f"the image could not be checked (sh -c exited with {code}): {said.strip()[-300:]}"
                ) from None
            raise ImageBuildFailed(
                f"the image has no {what}: Atoll runs notebooks and jobs with the image's python3 "
                "and installs packages with pip; install it in the Dockerfile "
                "(e.g. RUN apt-get install -y python3 python3-pip)"
            ) from None
        except APIError as e:
            raise ImageBuildFailed(
                f"the image could not be checked: {e.explanation} (it needs /bin/sh, python3 and pip)"
            ) from None
        lines = text.splitlines()
        version = lines[-2] if len(lines) >= 2 else "unknown"
        return version, bool(lines) and lines[-1] == "jupyterlab"

    @staticmethod
    def _push(
        client: docker.DockerClient, req: BuildRequest, image_id: str, on_output: Callable[[str], None]
    ) -> str:
        local_repo, tag = tag_parts(req.local_tag)
        repo = f"{req.registry.rstrip('/')}/{local_repo}"
        client.api.tag(image_id, repo, tag)
        on_output(f"pushing {repo}:{tag}\n")
        digest = ""
        for chunk in client.api.push(repo, tag=tag, stream=True, decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                message = str((chunk.get("errorDetail") or {}).get("message") or chunk.get("error"))
                raise ImageBuildFailed(f"pushing to {req.registry} failed: {message}")
            aux = chunk.get("aux")
            if isinstance(aux, dict) and isinstance(aux.get("Digest"), str):
                digest = aux["Digest"]
        on_output(f"pushed {repo}:{tag}{' ' + digest if digest else ''}\n")
        return f"{repo}:{tag}"

    def remove(self, references: list[str]) -> None:
        """Untag a deleted image's names on the daemon (the registry keeps its manifest: the
        distribution registry deletes only with its API enabled, which Atoll leaves off)."""
        client = self._client(60)
        try:
            for ref in references:
                with contextlib.suppress(ImageNotFound, APIError):
                    client.images.remove(ref, noprune=False)
        finally:
            client.close()
