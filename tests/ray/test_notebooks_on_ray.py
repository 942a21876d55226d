"""The notebook acceptance tests on the ray runtime: JupyterLab runs as a Ray actor's workload,
listens on its node's address, and the gateway proxies HTTP and kernel websockets to it; a
restarted server re-adopts the running notebook server and its kernel."""

from __future__ import annotations

from tests.notebooks.conftest import atoll  # noqa: F401 - the fixture of the imported tests
from tests.notebooks.test_notebooks import (  # noqa: F401 - re-run on the ray runtime
    test_execute_a_notebook_by_api,
    test_open_run_cell_and_only_developers_get_in,
    test_server_restart_readopts_notebook_servers_and_kernels_survive,
)
