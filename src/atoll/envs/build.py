"""Python environments built with uv, content-addressed and shared (spec §5.3).

An environment is keyed by sha256 of (Python version, normalized sorted requirements, pip
options), so every job asking for the same thing gets the same directory, built once. A build
goes into a temporary directory next to the cache and is renamed into place when complete, under
a per-key lock file: a crashed build never leaves a half environment behind, and concurrent
builds of one key (threads or processes) wait for one another instead of racing.

uv never downloads a Python here: the version must be installed on the machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from atoll.errors import Invalid
from atoll.jobspec.config import PipOptions
from atoll.jobspec.requirements import normalize_requirement
from atoll.runtime.base import PythonEnv
from atoll.storage.safepath import Tree

VERSION_FIELD = "env.python.version"
# Bump when the layout of a built environment changes. 2: bytecode compiled at build time.
_KEY_FORMAT = 2
_META = "atoll-env.json"
_MAX_MESSAGE = 1500


@dataclass(frozen=True)
class Environment:
    """A Python environment a workload runs in: its directory, its interpreter and its cache key."""

    path: Path
    python: Path
    key: str

    @property
    def bin_dir(self) -> Path:
        """Where the interpreter and the packages' console scripts are."""
        return self.python.parent

    def python_env(self) -> PythonEnv:
        """This environment as a workload uses it (each runtime realizes it its own way)."""
        return PythonEnv(self.path, venv=self.key != PLAIN_KEY)

    def activate(self, environ: Mapping[str, str]) -> dict[str, str]:
        """``environ`` with this environment first on PATH (and VIRTUAL_ENV set, for a venv)."""
        return self.python_env().activate(environ)


PLAIN_KEY = "plain"


def plain_environment() -> Environment:
    """The environment of a job without ``env.python``: the system Python, no packages of ours.

    That is the interpreter Atoll's own venv is based on (not the venv itself, whose packages
    belong to the server), so ``python3`` works in bash jobs.
    """
    base = Path(getattr(sys, "_base_executable", sys.executable) or sys.executable)
    return Environment(path=Path(sys.base_prefix), python=base, key=PLAIN_KEY)


def default_uv() -> Path:
    """The ``uv`` installed next to this interpreter (Atoll depends on it), else the one on PATH."""
    near = Path(sys.executable).parent / "uv"
    if near.is_file():
        return near
    found = shutil.which("uv")
    if found is None:
        raise FileNotFoundError("uv is not installed: it comes with Atoll's dependencies (pip install uv)")
    return Path(found)


class BuildFailed(Invalid):
    """uv could not resolve or install the requirements; ``output`` keeps uv's full output."""

    def __init__(self, detail: str, *, field: str | None = "env.python", output: str = "") -> None:
        super().__init__(detail, field=field)
        self.output = output


def _uv_message(output: str) -> str:
    """uv's error on one readable line: ``error:`` and its causes joined, hints kept, trimmed."""
    parts: list[str] = []
    started = False
    for raw in output.splitlines():
        line = re.sub(r"^[\s╰─▶×│]+", "", raw).strip()  # uv draws its cause chain as a tree
        if raw.lstrip().startswith(("error:", "×")):
            started = True
        if not started or not line:
            continue
        line = re.sub(r"^(error|cause):\s*", "", line)
        if parts and not line.startswith("hint:"):
            parts[-1] = parts[-1].rstrip(":")
            parts.append(f": {line}")
        else:
            parts.append(f" ({line})" if line.startswith("hint:") else line)
    text = "".join(parts) if parts else " ".join(output.split()[-60:])
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _pip_args(pip: PipOptions | None) -> list[str]:
    if pip is None:
        return []
    args: list[str] = []
    if pip.index_url:
        args += ["--index-url", pip.index_url]
    for url in pip.extra_index_urls:
        args += ["--extra-index-url", url]
    for host in pip.trusted_hosts:
        args += ["--allow-insecure-host", host]  # pip's --trusted-host
    if pip.no_deps:
        args.append("--no-deps")
    return args


def environment_key(
    python_version: str,
    requirements: Sequence[str],
    pip_options: PipOptions | None,
    excludes: Sequence[str] = (),
) -> str:
    """sha256 over what decides an environment's content; equal requests give equal keys."""
    pip = pip_options or PipOptions()
    payload: dict[str, object] = {
        "format": _KEY_FORMAT,
        "python": python_version.strip(),
        "requirements": sorted({normalize_requirement(r) for r in requirements}),
        "pip": {
            "index_url": pip.index_url,
            "extra_index_urls": sorted(set(pip.extra_index_urls)),
            "trusted_hosts": sorted(set(pip.trusted_hosts)),
            "no_deps": pip.no_deps,
        },
    }
    if excludes:
        payload["excludes"] = sorted({e.strip().lower() for e in excludes})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def usable_by_others(path: Path) -> bool:
    """Whether users other than the owner can reach and run `path` (every directory passable)."""
    try:
        real = path.resolve()
        return all(p.stat().st_mode & 0o001 for p in real.parents) and bool(real.stat().st_mode & 0o001)
    except OSError:
        return False


class EnvironmentBuilder:
    """Builds and caches environments under ``cache_dir`` with the ``uv`` binary given (or found)."""

    def __init__(self, cache_dir: Path, uv: Path | str | None = None, *, timeout: float = 1800) -> None:
        self.cache_dir = Path(cache_dir)
        self.uv = str(uv) if uv is not None else str(default_uv())
        self.timeout = timeout
        self._envs = self.cache_dir / "envs"
        self._tmp = self.cache_dir / "tmp"
        self._locks = self.cache_dir / "locks"
        self._running: set[subprocess.Popen[str]] = set()
        self._running_lock = threading.Lock()
        self._cancelled = False

    # -- uv

    def _uv_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["UV_PYTHON_DOWNLOADS"] = "never"  # belt and braces with --no-python-downloads
        env["UV_NO_PROGRESS"] = "1"
        # uv wraps its messages to COLUMNS (or 80): a cause cut over lines would read as several
        # causes in the one-line message (_uv_message); one long line each, wherever Atoll runs.
        env["COLUMNS"] = "10000"
        env.pop("VIRTUAL_ENV", None)  # the target is always given explicitly
        return env

    def _uv(self, *args: str, user: tuple[int, int] | None = None) -> subprocess.CompletedProcess[str]:
        """Run uv; as ``user`` (uid, gid) in a tree that user owns, so that uv reaches only what
        that user could (it follows links), with no cache of ours and owner-only files."""
        env = self._uv_env()
        if user is not None:
            env["UV_NO_CACHE"] = "1"
            env.pop("UV_CACHE_DIR", None)
        with self._running_lock:
            if self._cancelled:
                raise BuildFailed("the server is stopping: the environment was not built")
            proc = subprocess.Popen(
                [self.uv, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                # Shared envs are read by every project's workloads: readable, never writable.
                umask=0o022 if user is None else 0o077,
                user=user[0] if user else None,
                group=user[1] if user else None,
                extra_groups=[] if user else None,
                cwd="/" if user else None,
                # In the server's own process group: a server killed outright takes uv with it.
            )
            self._running.add(proc)
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise BuildFailed(f"building the environment took longer than {self.timeout:.0f} s") from None
        finally:
            with self._running_lock:
                self._running.discard(proc)
        if self._cancelled:
            raise BuildFailed("the server is stopping: the environment was not built")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def cancel(self) -> None:
        """Stop every uv this builder runs, now and later (at server shutdown): a build in flight
        fails and leaves nothing behind but its temp dir's removal."""
        with self._running_lock:
            self._cancelled = True
            running = list(self._running)
        for proc in running:  # the building thread reaps it (its communicate() returns)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                proc.kill()

    def available_pythons(self) -> list[str]:
        """major.minor of every Python installed on this machine that uv can use."""
        proc = self._uv(
            "python", "list", "--only-installed", "--no-python-downloads", "--output-format", "json"
        )
        versions: set[str] = set()
        if proc.returncode == 0:
            for item in json.loads(proc.stdout or "[]"):
                parts = item.get("version_parts") or {}
                if item.get("implementation", "cpython") == "cpython" and "major" in parts:
                    versions.add(f"{parts['major']}.{parts['minor']}")
        return sorted(versions, key=lambda v: tuple(int(x) for x in v.split(".")))

    def find_python(self, version: str) -> Path:
        """The installed interpreter for ``version``; an error naming env.python.version if there is none."""
        if not re.fullmatch(r"\d+\.\d+(\.\d+)?", version.strip()):
            raise Invalid(f"{VERSION_FIELD}: not a Python version: {version!r}", field=VERSION_FIELD)
        proc = self._uv(
            "python", "find", "--no-python-downloads", "--no-project", "--no-config", version.strip()
        )
        if proc.returncode != 0 or not proc.stdout.strip():
            available = ", ".join(self.available_pythons()) or "none"
            raise Invalid(
                f"{VERSION_FIELD}: Python {version} is not installed here (available: {available})",
                field=VERSION_FIELD,
            )
        found = Path(proc.stdout.strip().splitlines()[-1])
        if not usable_by_others(found):
            # Workloads may run as other users (one per project): an interpreter inside a private
            # home (pyenv under /root) would be out of their reach. Prefer a system-wide one.
            mm = ".".join(version.strip().split(".")[:2])
            for candidate in (Path(f"/usr/local/bin/python{mm}"), Path(f"/usr/bin/python{mm}")):
                if candidate.exists() and usable_by_others(candidate):
                    return candidate
        return found

    # -- cache

    def lookup(self, key: str) -> Environment | None:
        """The built environment with this key, if it is in the cache."""
        path = self._envs / key
        if not (path / _META).is_file():
            return None
        return Environment(path=path, python=path / "bin" / "python", key=key)

    def building_since(self, key: str) -> float | None:
        """When the build of ``key`` in progress began (by any process sharing this cache), or
        None when none is: a build holds the key's lock and works in a temp dir of its own."""
        lock = self._locks / f"{key}.lock"
        try:
            with open(lock, "a+") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
                return None
        except BlockingIOError:
            pass
        except OSError:
            return None
        work = (
            sorted(self._tmp.glob(f"{key[:16]}-*"), key=lambda d: d.stat().st_mtime)
            if self._tmp.exists()
            else []
        )
        return work[-1].stat().st_mtime if work else lock.stat().st_mtime

    @contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        self._locks.mkdir(parents=True, exist_ok=True)
        with open(self._locks / f"{key}.lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when the file is closed, also if we crash
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def build(
        self,
        python_version: str,
        requirements: Sequence[str] = (),
        pip_options: PipOptions | None = None,
        *,
        excludes: Sequence[str] = (),
    ) -> Environment:
        """The environment for this Python version, requirements and pip options: cached, or built now.

        ``excludes`` names packages left out of the resolution even where a requirement depends
        on them (uv's ``--excludes``), for a dependency known to be unneeded and costly.
        Raises ``Invalid`` naming ``env.python.version`` when that Python is not installed here
        (listing those that are), and ``BuildFailed`` with uv's resolver message when the
        requirements cannot be installed. An empty list of requirements gives a bare venv.
        """
        reqs = sorted({normalize_requirement(r) for r in requirements})
        key = environment_key(python_version, reqs, pip_options, excludes)
        found = self.lookup(key)
        if found is not None:
            return found
        with self._lock(key):
            found = self.lookup(key)  # built by someone else while we waited for the lock
            if found is not None:
                return found
            return self._build(key, python_version, reqs, pip_options, sorted(set(excludes)))

    def overlay(
        self,
        base: Environment,
        target: Path,
        run_as: tuple[int, int] | None = None,
        under: Environment | None = None,
    ) -> Environment:
        """A venv at ``target`` layered over ``base``: base's packages import, installs land in target.

        Used for a project's notebook environment: the shared base (JupyterLab, ipykernel, pip…)
        stays read-only and cached, while what users ``%pip install`` is kept with the project.
        Created once; later calls only refresh the link to the base (it moves when the base's
        pinned requirements change). The link is a ``.pth`` file that adds base's site-packages
        after target's own, so a package the user upgraded wins over the base's copy.

        ``under``: another environment whose packages import after base's (a job's own
        environment layered on its project's: the job's pins win, the project's fill in the rest).

        ``run_as``: the project's (uid, gid). The target is theirs, its contents theirs to plant
        links in, so it is made (never through a link) and handed to them first, and uv creates or
        repairs the venv as them: it can write only where they could anyway.
        """
        target = Path(target)
        python = target / "bin" / "python"
        # One project's server and its API runs may prepare at once: one creates, the others wait.
        with self._lock("overlay-" + hashlib.sha256(str(target).encode()).hexdigest()[:32]):
            if run_as is not None:
                with Tree(target.parent) as parent, parent.sub(target.name, create=True) as own:
                    os.fchown(own.fd, *run_as)
                    os.fchmod(own.fd, 0o700)
            if not python.exists():
                # --allow-existing: a half-made or broken venv is repaired, never wiped, so packages
                # the project installed survive (a dangling interpreter link, a crash mid-create).
                proc = self._uv(
                    "venv", "--allow-existing", "--no-python-downloads", "--no-project", "--no-config",
                    "--quiet", "--python", str(base.python), str(target), user=run_as,
                )  # fmt: skip
                if proc.returncode != 0:
                    raise BuildFailed(f"cannot create the project environment: {_uv_message(proc.stderr)}")
            # The project's user owns the target: the link file is read and written through the
            # safe-path module, never through a link planted in its place or on its way.
            # .pth files are read in name order: "_atoll_base.pth" before "_atoll_base_under.pth".
            links = [("_atoll_base.pth", base)] + ([("_atoll_base_under.pth", under)] if under else [])
            with Tree(target) as tree:
                for name, env in links:
                    link = f"import site; site.addsitedir({str(site_packages(env.path))!r})\n".encode()
                    pth = site_packages(target).relative_to(target) / name
                    try:
                        current = tree.read_bytes(pth, len(link) + 1)
                    except OSError:
                        current = b""
                    if current != link:  # the file is the environment's owner's, as the rest of it
                        st = os.fstat(tree.fd)
                        tree.write_new(pth, link, mode=0o600, owner=(st.st_uid, st.st_gid))
        key = f"overlay:{base.key}" + (f"+{under.key}" if under else "")
        return Environment(path=target, python=python, key=key)

    def _build(
        self,
        key: str,
        python_version: str,
        reqs: list[str],
        pip_options: PipOptions | None,
        excludes: list[str],
    ) -> Environment:
        interpreter = self.find_python(python_version)
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._envs.mkdir(parents=True, exist_ok=True)
        for shared in (self.cache_dir, self._envs):  # the server's umask is 077: every workload reads these
            shared.chmod(0o755)
        work = Path(tempfile.mkdtemp(prefix=f"{key[:16]}-", dir=self._tmp))
        try:
            venv = work / "env"
            started = time.monotonic()
            # --relocatable: entry points and activation scripts find the venv relative to
            # themselves, so the rename below does not break them.
            proc = self._uv(
                "venv", "--relocatable", "--no-python-downloads", "--no-project", "--no-config", "--quiet",
                "--python", str(interpreter), str(venv),
            )  # fmt: skip
            if proc.returncode != 0:
                raise BuildFailed(
                    f"cannot create the environment: {_uv_message(proc.stderr)}",
                    field=VERSION_FIELD,
                    output=proc.stderr,
                )
            python = venv / "bin" / "python"
            exclude_args: list[str] = []
            if excludes:
                (work / "excludes.txt").write_text("".join(f"{e}\n" for e in excludes))
                exclude_args = ["--excludes", str(work / "excludes.txt")]
            if reqs:
                # --compile-bytecode: workloads run as the project's user, who may not write
                # __pycache__ into this shared, root-owned environment; without .pyc files every
                # start would compile each imported module again (seconds for JupyterLab).
                # --only-binary :all:: wheels only. The requirements are a tenant's (a job's
                # env.python, a project environment, a model's libraries) and this build runs as
                # the server's user: building a source distribution would run its code there.
                proc = self._uv(
                    "pip", "install", "--no-config", "--compile-bytecode", "--only-binary", ":all:",
                    "--python", str(python), *_pip_args(pip_options), *exclude_args, *reqs,
                )  # fmt: skip
                if proc.returncode != 0:
                    message = _uv_message(proc.stderr)
                    if "building from source is disabled" in message or "no usable wheels" in message:
                        message += (
                            " (shared environments take wheels only: building from source would run "
                            "the package's code on the server; install it with %pip in a notebook, "
                            "or run the job in a Docker image, env.docker)"
                        )
                    raise BuildFailed(
                        f"cannot install the requirements: {message}", output=proc.stdout + proc.stderr
                    )
            meta = {
                "key": key,
                "python_version": python_version,
                "interpreter": str(interpreter),
                "requirements": reqs,
                "pip": dataclasses.asdict(pip_options or PipOptions()),
                "excludes": excludes,
                "build_seconds": round(time.monotonic() - started, 3),
                "size_bytes": _size(venv),
                "packages": len(list(site_packages(venv).glob("*.dist-info"))),
            }
            (venv / _META).write_text(json.dumps(meta, indent=2))
            final = self._envs / key
            if final.exists():  # left by hand or by an older Atoll without its metadata file
                shutil.rmtree(final)
            os.rename(venv, final)  # atomic on one file system; the lock rules out a rival
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return Environment(path=final, python=final / "bin" / "python", key=key)


def _kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a uv run (by its pid, which it holds until we reap it) and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
        proc.communicate(timeout=10)


def _size(root: Path) -> int:
    """Bytes under ``root`` (each file once: uv hard-links files from its cache)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for d, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(d, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def metadata(env: Environment) -> dict[str, object]:
    """What the environment's build recorded (requirements, build time, size, packages)."""
    try:
        data: dict[str, object] = json.loads((env.path / _META).read_text())
        return data
    except (OSError, ValueError):
        return {}


def site_packages(venv: Path) -> Path:
    """``<venv>/lib/pythonX.Y/site-packages`` (one Python per venv, so one match)."""
    found = sorted(Path(venv).glob("lib/python*/site-packages"))
    if not found:
        raise BuildFailed(f"{venv} has no site-packages directory")
    return found[0]
