"""Config keys an installation may not serve yet: refused with a clear message, never ignored.

The runtime says what it can do as a set of capability names; every used key whose capability
is missing from the set (including names this module does not know yet) is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from atoll.jobspec.config import JobConfig

# name -> (is the key used?, config field, message)
_FEATURES: dict[str, tuple[Callable[[JobConfig], bool], str, str]] = {
    "docker": (
        lambda c: c.env.docker is not None,
        "env.docker",
        "Docker images in jobs are not available on this installation",
    ),
    "s3-mounts": (
        lambda c: bool(c.s3_mounts),
        "s3-mounts",
        "S3 connectors are not available on this installation",
    ),
    "datasets": (lambda c: bool(c.datasets), "datasets", "datasets are not available on this installation"),
    "project-disk": (
        lambda c: c.attach_project_disk,
        "flags",
        "the project disk (attach-project-disk) is not available on this installation",
    ),
    "working-storage": (
        lambda c: c.working_storage is not None,
        "working-storage",
        "extended working storage is not available on this installation",
    ),
    "graceful-shutdown": (
        lambda c: c.graceful_shutdown is not None,
        "graceful-shutdown",
        "graceful shutdown is not available on this installation",
    ),
    "output-datasets": (
        lambda c: bool(c.output_datasets),
        "output-datasets",
        "output datasets are not available on this installation",
    ),
    "spark": (
        lambda c: c.spark is not None,
        "spark",
        "Spark connectors (Data Proc) are not available on this installation",
    ),
}

ALL_CAPABILITIES = frozenset(_FEATURES)


def unsupported_keys(cfg: JobConfig, capabilities: Collection[str]) -> list[tuple[str, str]]:
    """``(field, message)`` for each key ``cfg`` uses that needs a capability not in ``capabilities``.

    Capability names: ``docker``, ``s3-mounts``, ``datasets``, ``project-disk``,
    ``working-storage``, ``graceful-shutdown``, ``output-datasets``, ``spark`` (``ALL_CAPABILITIES``).
    Messages read ``"s3-mounts: S3 connectors are not available on this installation"``.
    """
    out = []
    for name, (used, field, message) in _FEATURES.items():
        if name not in capabilities and used(cfg):
            out.append((field, f"{field}: {message}"))
    return out
