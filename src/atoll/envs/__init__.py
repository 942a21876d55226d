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
from atoll.envs.requirements import (
    RequirementsFile,
    normalize_requirement,
    parse_requirements,
    read_requirements_file,
)

__all__ = [
    "ROOTS_NOT_FOUND",
    "BuildFailed",
    "Environment",
    "EnvironmentBuilder",
    "Exploration",
    "Interpreter",
    "PythonEnvSpec",
    "PythonModule",
    "RequirementsFile",
    "default_uv",
    "detect_python_env",
    "environment_key",
    "explore",
    "generate_requirements",
    "main_module",
    "normalize_requirement",
    "parse_requirements",
    "plain_environment",
    "read_requirements_file",
    "root_modules",
]
