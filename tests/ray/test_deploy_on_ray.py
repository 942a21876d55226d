"""The deploy acceptance tests on the ray runtime: node instances run as Ray actors on either node
(127.0.0.2 or 127.0.0.3), bind to their node's address ($HOST) and the gateway, health checks and
metrics scrapes reach them there; a model trained by a job on Ray answers tritonclient."""

from __future__ import annotations

from tests.deploy.conftest import (  # noqa: F401 - fixtures of the imported tests
    project,
    server,
)
from tests.deploy.test_models import test_sklearn_model_from_a_job_answers_tritonclient  # noqa: F401
from tests.deploy.test_nodes import test_command_node_answers_through_alias_and_node_routes  # noqa: F401
from tests.deploy.test_switching import (  # noqa: F401
    test_alias_switch_and_node_deletion_fail_no_request,
    test_killed_instance_is_restarted_and_no_request_fails,
)
