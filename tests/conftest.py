"""Shared fixtures: a real PostgreSQL, an in-process app per database backend, the real server."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import leaks
from tests.support.postgres import create_database, running_postgres
from tests.support.server import ENV_CACHE, RunningServer, start_server

# Every server the suite starts, in process or not, builds the built-in environments at its start
# (envs/builtins.py): in one cache shared by all of them and kept across runs, that is once per
# machine, not once per server. A test that wants its own cache sets ATOLL_ENVS_DIR itself.
os.environ.setdefault("ATOLL_ENVS_DIR", str(ENV_CACHE))

# Everything the suite starts inherits this mark, or works in a tree registered as the session's
# (tests/support/leaks.py); the run fails if any of it is alive at the end.
_MARK = leaks.mark_session()
_STARTED = time.time()
# Parallel workers (pytest-xdist, `./dev test` runs some) share the mark, and the controller
# checks for leftovers once every worker is done: a worker that finished early must not count
# another's live servers as its own leftovers.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER is None:
    leaks.share_roots(Path(tempfile.gettempdir()))
leaks.register_root(Path(__file__).resolve().parent.parent)  # this checkout: servers, shims


@pytest.fixture(scope="session", autouse=True)
def _session_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    leaks.register_root(tmp_path_factory.getbasetemp())


@pytest.hookimpl(trylast=True)  # after pytest-xdist has stopped its workers
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return  # interrupted or broken: the fixtures may not have had their teardown
    if _WORKER is not None:
        return  # the controller checks, after every worker
    leaks.load_shared_roots()
    with contextlib.suppress(OSError):
        os.unlink(os.environ[leaks.ROOTS_FILE])
    found = leaks.wait_for_none(_MARK, _STARTED, leaks.ancestors())
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = ["processes started by the suite are still alive (a fixture did not stop them):"]
        lines += [f"  {p}" for p in found]
        if reporter is not None:
            reporter.write_line("\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        action="store",
        default="sqlite,postgresql",
        help="database backends for the backend-parametrized tests (comma-separated)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" in metafunc.fixturenames:
        backends = [b.strip() for b in metafunc.config.getoption("--db").split(",") if b.strip()]
        metafunc.parametrize("db_backend", backends, scope="module")


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    with running_postgres() as url:
        yield url


@pytest.fixture(scope="module")
def database_url(
    db_backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> str:
    """A fresh, empty database of the requested backend."""
    if db_backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'atoll.db'}"
    admin = request.getfixturevalue("pg_admin_url")
    return create_database(admin, f"atoll_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def fresh_database_url(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if db_backend == "sqlite":
        return f"sqlite:///{tmp_path / 'atoll.db'}"
    admin = request.getfixturevalue("pg_admin_url")
    return create_database(admin, f"atoll_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The real `atoll up` on SQLite, shared by a test module."""
    srv = start_server(tmp_path_factory.mktemp("atoll-server"))
    try:
        yield srv
    finally:
        srv.stop()
