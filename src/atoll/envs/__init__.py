"""Python environments for jobs: detection on the submitter's side, uv builds on the server's."""

from atoll.envs.build import (
    BuildFailed,
    Environment,
    EnvironmentBuilder,
    default_uv,
    environment_key,
    plain_environment,
)
from atoll.envs.detect import (
    ROOTS_NOT_FOUND,
    Exploration,
    PythonEnvSpec,
    PythonModule,
    detect_python_env,
    explore,
    generate_requirements,
    main_module,
    root_modules,
)
from atoll.envs.interpreter import Interpreter

__all__ = [
    "ROOTS_NOT_FOUND",
    "BuildFailed",
    "Environment",
    "EnvironmentBuilder",
    "Exploration",
    "Interpreter",
    "PythonEnvSpec",
    "PythonModule",
    "default_uv",
    "detect_python_env",
    "environment_key",
    "explore",
    "generate_requirements",
    "main_module",
    "plain_environment",
    "root_modules",
]
