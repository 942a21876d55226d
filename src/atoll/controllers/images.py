"""The images controller: builds projects' Docker images (spec §4.3) one at a time.

A PENDING image is taken to BUILDING and built on a thread of its own (runtime/docker/images.py):
the Dockerfile on the installation's Docker daemon, in the project's Docker network when it has
one, its output written to the row's log as it comes (the API and `atoll image create` follow
it), then checked for python3 and pip and pushed to the registry. It ends READY, or FAILED with
the failing step and the daemon's message. A build cut off by a server stop is queued again at
the next start. Credentials for a private base image come from the project's secret, opened
here and handed to the daemon for this build alone; they are never logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from atoll.domain.images import local_tag
from atoll.domain.secrets import SecretBox
from atoll.runtime.docker.images import (
    BuildRequest,
    Credentials,
    ImageBuilder,
    ImageBuildFailed,
    base_images,
    registry_of,
)
from atoll.runtime.docker.local_registry import LocalRegistry, RegistryUnavailable
from atoll.states import ImageStatus
from atoll.store.db import Database
from atoll.store.tables import ProjectImage, Secret, utcnow

log = logging.getLogger(__name__)
MAX_LOG = 512 * 1024
_FLUSH_S = 1.0  # how often the log in the row catches up with the build


class ImageController:
    """Builds projects' images (see the module docstring)."""

    name = "images"

    def __init__(
        self,
        db: Database,
        builder: ImageBuilder,
        box: SecretBox,
        *,
        registry: str = "",
        memory_mb: int = 4096,
        timeout_s: float = 1800.0,
        network_of: Callable[[str], str | None] | None = None,
        local_registry: LocalRegistry | None = None,
    ) -> None:
        self.db = db
        self.builder = builder
        self.box = box
        self.registry = registry.rstrip("/")
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self.network_of = network_of  # the project's Docker network (made when missing), if any
        self.local_registry = local_registry  # Atoll's own, where ``registry`` names none
        self._thread: threading.Thread | None = None

    def interval(self, base: float) -> float:
        return max(base, 1.0)

    def register(self) -> None:
        """At start: a build the last server left BUILDING is queued again."""
        with self.db.transaction() as s:
            for row in s.scalars(select(ProjectImage).where(ProjectImage.status == ImageStatus.BUILDING)):
                row.status, row.detail = ImageStatus.PENDING, "queued again: the server had stopped mid-build"

    def close(self) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)  # a build goes on in the daemon until its connection closes
        if self.local_registry is not None:
            self.local_registry.close()

    def tick(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self.db.transaction() as s:
            row = s.scalar(
                select(ProjectImage)
                .where(ProjectImage.status == ImageStatus.PENDING)
                .order_by(ProjectImage.created_at)
                .limit(1)
            )
            if row is None:
                return
            row.status, row.started_at, row.detail = ImageStatus.BUILDING, utcnow(), "starting the build"
            row.log, row.failed_step = "", ""
            request = self._request(s, row)
            row_id = row.id
        self._thread = threading.Thread(
            target=self._build, args=(row_id, request), name="atoll-image-build", daemon=True
        )
        self._thread.start()

    def _request(self, s: Session, row: ProjectImage) -> BuildRequest | str:
        """What the builder gets; a string: why the build cannot start."""
        credentials = None
        if row.username and row.password_secret:
            secret = s.scalar(
                select(Secret).where(Secret.project_id == row.project_id, Secret.name == row.password_secret)
            )
            if secret is None:
                return f"the secret {row.password_secret!r} with the registry password is gone"
            bases = base_images(row.dockerfile)
            credentials = Credentials(
                registry_of(bases[0]) if bases else "", row.username, self.box.open(secret.ciphertext)
            )
        network = None
        if self.network_of is not None:
            try:
                network = self.network_of(row.project_id)
            except Exception as e:  # the daemon refused: the build reports it
                return f"the project's Docker network could not be made: {e}"
        return BuildRequest(
            project_id=row.project_id,
            dockerfile=row.dockerfile,
            local_tag=local_tag(row.project_id, row.name, row.tag),
            registry=self.registry,
            credentials=credentials,
            network=network,
            memory_mb=self.memory_mb,
            timeout_s=self.timeout_s,
        )

    def _build(self, row_id: str, request: BuildRequest | str) -> None:
        started = time.monotonic()
        output: list[str] = []
        state = {"flushed": 0, "at": time.monotonic(), "step": ""}

        def flush(force: bool = False) -> None:
            if not force and time.monotonic() - state["at"] < _FLUSH_S:  # type: ignore[operator]
                return
            state["at"] = time.monotonic()
            text = "".join(output)[-MAX_LOG:]
            with self.db.transaction() as s:
                row = s.get(ProjectImage, row_id)
                if row is not None and row.status == ImageStatus.BUILDING:
                    row.log = text
                    steps = [ln for ln in text.splitlines() if ln.startswith("Step ")]
                    if steps:
                        row.detail = steps[-1][:1500]

        def on_output(text: str) -> None:
            output.append(text)
            flush()

        try:
            if isinstance(request, str):
                raise ImageBuildFailed(request)
            if not request.registry and self.local_registry is not None:
                try:
                    request = replace(request, registry=self.local_registry.ensure())
                except RegistryUnavailable as e:  # built all the same; kept on the daemon
                    on_output(f"no registry: {e}; the image is kept on the Docker daemon only\n")
            built = self.builder.build(request, on_output)
        except ImageBuildFailed as e:
            log.info("image %s failed to build: %s", row_id, e.message)
            with self.db.transaction() as s:
                row = s.get(ProjectImage, row_id)
                if row is not None:
                    where = f"{e.step}: " if e.step else ""
                    row.status, row.failed_step = ImageStatus.FAILED, e.step[:512]
                    row.detail = f"{where}{e.message}"[:1500]
                    row.log = ("".join(output) + f"\nFAILED: {row.detail}\n")[-MAX_LOG:]
                    row.built_at = utcnow()
            return
        except Exception as e:  # the daemon went away, a bug: the row says so, the server goes on
            log.exception("image %s: the build broke", row_id)
            with self.db.transaction() as s:
                row = s.get(ProjectImage, row_id)
                if row is not None:
                    row.status, row.detail = ImageStatus.FAILED, f"the build broke: {e}"[:1500]
                    row.log = "".join(output)[-MAX_LOG:]
            return
        with self.db.transaction() as s:
            row = s.get(ProjectImage, row_id)
            if row is not None:
                row.status, row.detail = ImageStatus.READY, ""
                row.image_id, row.reference = built.image_id, built.reference
                row.python_version, row.size_bytes = built.python_version, built.size_bytes
                row.has_jupyterlab = built.has_jupyterlab
                row.build_seconds = round(time.monotonic() - started, 2)
                row.built_at = utcnow()
                row.log = "".join(output)[-MAX_LOG:]
        log.info("image %s ready: %s", row_id, built.reference)
