"""The Python SDK for jobs (spec §5.5, §5.7): DataSphere's ``datasphere.SDK``, over Atoll's API.

```python
from atoll.sdk import SDK

sdk = SDK()  # ATOLL_URL / ATOLL_TOKEN, or what `atoll login` saved
job = sdk.fork_job("job-1f3c9a0b2d4e6f80", args={"RANGE": "1"}, vars={"INPUT": "new_input.txt"})
job.wait()  # streams the job's stdout and stderr; raises JobFailed unless it succeeds
sdk.download_job_files(job.id)
```

An Airflow sensor polls ``sdk.get_job(job_id).done`` instead of waiting. System messages,
status changes and progress go to the ``atoll.sdk`` logger; the program's output to
``sys.stdout`` and ``sys.stderr``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from atoll.client import AtollError, Client
from atoll.jobclient import (
    Follower,
    Job,
    JobClient,
    default_log_dir,
    failure_message,
    prepare_job,
)
from atoll.states import JOB_TERMINAL

log = logging.getLogger("atoll.sdk")


SDK_WAIT_S = 10.0  # how long one follow call may wait for news


class JobFailed(AtollError):
    """A job ended in ERROR or CANCELLED; ``job`` is its final state."""

    def __init__(self, message: str, job: Job) -> None:
        super().__init__(message, title="Job failed")
        self.job = job


class _StreamSink:
    """The program's output to this process's stdout/stderr; the rest to the ``atoll.sdk`` logger."""

    def stdout(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def stderr(self, text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    def system(self, text: str) -> None:
        for line in text.splitlines():
            log.info("%s", line)

    def progress(self, progress: Mapping[str, Any]) -> None:
        log.info("progress: %s%% %s", progress.get("progress"), progress.get("message") or "")

    def status(self, status: str, details: str) -> None:
        log.info("status: %s%s", status, f" ({details})" if details else "")


class JobWrapper:
    """A job this SDK started or looked up: ``id``, ``done``, ``wait()``, ``cancel()``."""

    def __init__(self, sdk: SDK, job: Job) -> None:
        self._sdk = sdk
        self.job = job
        self.operation_id: str | None = None  # DataSphere's long-running operation; Atoll has none

    @property
    def id(self) -> str:
        return str(self.job["id"])

    def refresh(self) -> Job:
        """Fetch the job's current state (also kept in ``.job``)."""
        self.job = self._sdk.jobs.get(self.id)
        return self.job

    @property
    def status(self) -> str:
        """The current status (fetched): CREATING, PREPARING, EXECUTING, ..., SUCCESS, ERROR, CANCELLED."""
        return str(self.refresh()["status"])

    @property
    def done(self) -> bool:
        """Whether the job has ended (SUCCESS, ERROR or CANCELLED); asks the server each time."""
        return self.status in JOB_TERMINAL

    def wait(self, *, stream_logs: bool = True, log_dir: Path | None = None) -> Job:
        """Block until the job ends, streaming its stdout and stderr (from the start) unless told not to.

        Local log files go to ``log_dir`` (default: the SDK's, else a temporary directory).
        Returns the final job; raises ``JobFailed`` if it ended in ERROR or CANCELLED.
        """
        directory = log_dir or (
            self._sdk.log_dir / self.id if self._sdk.log_dir else default_log_dir(self.id)
        )
        if stream_logs:
            log.info("job %s: logs file path: %s", self.id, directory)
        sink = _StreamSink() if stream_logs else _QuietSink()
        # Long waits: nothing here polls a Ctrl+C flag (KeyboardInterrupt ends the call anyway).
        follower = Follower(self._sdk.jobs, self.id, sink, log_dir=directory, wait_s=SDK_WAIT_S)
        try:
            final = follower.run()
        finally:
            follower.close()
        assert final is not None  # run() only stops early when asked to
        self.job = final
        message = failure_message(final)
        if message:
            raise JobFailed(message, final)
        return final

    def cancel(self, graceful: bool = False) -> Job:
        """Cancel: SIGKILL, or with ``graceful`` the config's graceful-shutdown signal and timeout."""
        self.job = self._sdk.jobs.cancel(self.id, graceful=graceful)
        return self.job

    def download_files(self, with_logs: bool = False, output_dir: Path | str | None = None) -> list[Path]:
        """Same as ``SDK.download_job_files(self.id, ...)``."""
        return self._sdk.download_job_files(self.id, with_logs=with_logs, output_dir=output_dir)

    def __repr__(self) -> str:
        return f"JobWrapper(id={self.id!r}, status={self.job.get('status')!r})"


class _QuietSink(_StreamSink):
    def stdout(self, text: str) -> None:
        pass

    def stderr(self, text: str) -> None:
        pass

    def system(self, text: str) -> None:
        pass


class SDK:
    """Jobs from Python. ``url`` and ``token`` default to ATOLL_URL / ATOLL_TOKEN, then `atoll login`."""

    def __init__(
        self, url: str | None = None, token: str | None = None, log_dir: Path | str | None = None
    ) -> None:
        self.client = Client(url, token)
        self.jobs = JobClient(self.client)
        self.log_dir = Path(log_dir) if log_dir is not None else None

    def close(self) -> None:
        self.jobs.close()
        self.client.close()

    def __enter__(self) -> SDK:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _project_id(self, project: str) -> str:
        """A project id as given, else the id of the one visible project with that name."""
        try:
            found: Job = self.client.get(f"/projects/{project}")
            return str(found["id"])
        except AtollError as e:
            if e.status not in (404, 422):
                raise
        name = project.rsplit("/", 1)[-1]
        matches = [p for p in self.client.paginate("/projects", projectNamePattern=name) if p["name"] == name]
        if len(matches) != 1:
            how = "not found" if not matches else "is ambiguous: use its id"
            raise AtollError(f"project {project!r} {how}")
        return str(matches[0]["id"])

    def execute(
        self,
        project: str,
        config_path: Path | str,
        *,
        name: str | None = None,
        desc: str | None = None,
        data_ttl_days: int | None = 14,
    ) -> JobWrapper:
        """Check ``config.yaml``, upload what the server lacks and start the job (``.wait()`` for it).

        Paths in the config are relative to the working directory, as with the CLI.
        """
        project_id = self._project_id(project)
        with prepare_job(Path(config_path)) as prepared:
            for warning in prepared.warnings:
                log.warning("%s", warning)
            job, uploaded = self.jobs.submit(
                project_id, prepared, name=name, desc=desc, data_ttl_days=data_ttl_days
            )
        log.info(
            "created job %s; uploaded %d file(s), %d already there",
            job["id"],
            uploaded.files,
            uploaded.cached,
        )
        return JobWrapper(self, self.jobs.execute(job["id"]))

    def fork_job(
        self,
        source_job_id: str,
        args: Mapping[str, str] | None = None,
        vars: Mapping[str, str] | None = None,
        env_vars: Mapping[str, str] | None = None,
        name: str | None = None,
        desc: str | None = None,
        cloud_instance_types: list[str] | None = None,
    ) -> JobWrapper:
        """Re-run a job with overrides and start it (spec §5.7).

        ``args``: new values of the source's args; ``vars``: a local file for an input variable,
        or a path for an output variable; ``env_vars``: replaces the source's env vars.
        """
        job, uploaded = self.jobs.fork_job(
            source_job_id,
            args=args,
            vars=vars,
            env_vars=env_vars,
            name=name,
            desc=desc,
            cloud_instance_types=cloud_instance_types,
        )
        log.info(
            "created job %s (a fork of %s); uploaded %d file(s)", job["id"], source_job_id, uploaded.files
        )
        return JobWrapper(self, self.jobs.execute(job["id"]))

    def get_job(self, job_id: str) -> JobWrapper:
        """A job by id."""
        return JobWrapper(self, self.jobs.get(job_id))

    def list_jobs(self, project: str) -> list[Job]:
        """Every job of a project (id or name), as the API returns them."""
        return self.jobs.list_jobs(self._project_id(project))

    def cancel_job(self, job_id: str, graceful: bool = False) -> Job:
        """Cancel a job (see ``JobWrapper.cancel``)."""
        return self.jobs.cancel(job_id, graceful=graceful)

    def set_data_ttl(self, job_id: str, days: int | None) -> Job:
        """Keep the job's data ``days`` after it ends; None keeps it forever."""
        return self.jobs.set_data_ttl(job_id, days)

    def download_job_files(
        self, id: str, with_logs: bool = False, output_dir: Path | str | None = None
    ) -> list[Path]:
        """Download a finished job's outputs (and its logs) into ``output_dir`` (default: the working dir).

        While the job runs nothing is downloaded (a warning is logged); a failed job's outputs
        are downloaded with a warning. Returns the paths written.
        """
        dest = Path(output_dir) if output_dir is not None else Path.cwd()
        job = self.jobs.get(id)
        if job["status"] not in JOB_TERMINAL:
            log.warning("job %s is still running (%s): nothing downloaded", id, job["status"])
            return []
        message = failure_message(job)
        if message:
            log.warning("%s", message)
        if job.get("dataCleared"):
            raise AtollError(f"job {id}'s data is cleared: there is nothing to download")
        paths = self.jobs.download_outputs(job, dest)
        if with_logs:
            paths += self.jobs.download_logs(id, dest)
        return paths
