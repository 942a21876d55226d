"""Jobs from the submitter's side (spec §5.5-§5.7), shared by the `atoll job` CLI and the SDK.

The flow is DataSphere's: parse and check ``config.yaml`` locally, detect the Python
environment, zip directories (deterministically, so the same directory always hashes the same),
hash every file, create the job, upload only the files the server asks for, execute, follow the
logs from byte offsets, and download the outputs into the working directory.

Paths in the config are relative to the current working directory, as with DataSphere's CLI;
outputs come back there too. Nothing here prints: callers get callbacks (``LogSink``,
``Transfer``) and decide how to show things. Every failure is an ``AtollError`` with one line.

    pack.py     the config checked, files hashed and zipped, the environment detected
    api.py      the jobs API: create, upload, execute, fork, cancel, download
    follow.py   logs, progress and the end of a running job
"""

from atoll.jobclient.api import JobClient, Uploaded, output_path, safe_extract
from atoll.jobclient.follow import (
    Follower,
    LocalLogs,
    LogSink,
    default_log_dir,
    describe_outputs,
    failure_message,
    wait_until_done,
)
from atoll.jobclient.pack import (
    MODULE_EXCLUDES,
    Blob,
    Job,
    PreparedJob,
    Transfer,
    config_error,
    make_blob,
    plan_uploads,
    prepare_job,
    sha256_file,
)
from atoll.jobspec.archive import zip_dir

__all__ = [
    "MODULE_EXCLUDES",
    "Blob",
    "Follower",
    "Job",
    "JobClient",
    "LocalLogs",
    "LogSink",
    "PreparedJob",
    "Transfer",
    "Uploaded",
    "config_error",
    "default_log_dir",
    "describe_outputs",
    "failure_message",
    "make_blob",
    "output_path",
    "plan_uploads",
    "prepare_job",
    "safe_extract",
    "sha256_file",
    "wait_until_done",
    "zip_dir",
]
