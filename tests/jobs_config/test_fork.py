"""Fork overrides (spec §5.7): what may change and what may not, each refusal naming the field."""

from __future__ import annotations

import textwrap

import pytest

from atoll.errors import Invalid
from atoll.jobspec import (
    DockerImage,
    EnvVar,
    JobConfig,
    VariablePath,
    WorkingStorage,
    apply_fork,
    parse_config,
)

SOURCE = textwrap.dedent(
    """
    name: grep
    desc: first run
    cmd: grep -C ${RANGE} ${OPTIONS} -f ${PATTERN} ${INPUT} > ${OUTPUT}
    args: {RANGE: 0, OPTIONS: "-h -r"}
    inputs: [{pattern.txt: PATTERN}, {input.txt: INPUT}, notes.txt]
    outputs: [{output.txt: OUTPUT}]
    s3-mounts: [{s3connector000000001: S3}]
    env:
      vars: [{A: "1"}]
      docker: b1gimage000000000000
      python: auto
    """
)


@pytest.fixture
def source() -> JobConfig:
    return parse_config(SOURCE)[0]


def test_no_overrides_is_the_same_config(source: JobConfig) -> None:
    assert apply_fork(source) == source


def test_spec_example_args_and_vars(source: JobConfig) -> None:
    fork = apply_fork(source, args={"RANGE": "1"}, vars={"INPUT": "new_input.txt", "OUTPUT": "out2.txt"})
    assert fork.args == {"RANGE": "1", "OPTIONS": "-h -r"}
    assert fork.inputs == (
        VariablePath("pattern.txt", "PATTERN"),
        VariablePath("new_input.txt", "INPUT"),
        VariablePath("notes.txt"),
    )
    assert fork.outputs == (VariablePath("out2.txt", "OUTPUT"),)
    assert (
        fork.cmd == source.cmd and fork.s3_mounts == source.s3_mounts and fork.env.python == source.env.python
    )
    assert source.args == {"RANGE": "0", "OPTIONS": "-h -r"}  # the source is untouched


def test_name_desc_env_vars_docker_storage_instance_types(source: JobConfig) -> None:
    fork = apply_fork(
        source,
        name="grep-2",
        desc="second run",
        env_vars={"B": "2", "C": ""},
        docker={"image": "ubuntu:focal", "username": "u", "password": {"secret-id": "reg-pass"}},
        working_storage={"type": "SSD", "size": "200Gb"},
        cloud_instance_types=["g1.1", "c1.8"],
    )
    assert fork.name == "grep-2" and fork.desc == "second run"
    assert fork.env.vars == (EnvVar("B", "2"), EnvVar("C", ""))  # replaces the source set
    assert fork.env.docker == DockerImage("ubuntu:focal", "u", "reg-pass")
    assert fork.working_storage == WorkingStorage(200)
    assert fork.cloud_instance_types == ("g1.1", "c1.8")
    assert apply_fork(source, docker="system-python-3-10").env.docker == "system-python-3-10"
    assert apply_fork(source, working_storage=WorkingStorage(300)).working_storage == WorkingStorage(300)
    assert apply_fork(source, cloud_instance_types="g2.1").cloud_instance_types == ("g2.1",)
    assert apply_fork(source, env_vars={}).env.vars == ()


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"args": {"NEW": "1"}}, "args.NEW", "no such argument (it has: RANGE, OPTIONS)"),
        ({"args": {"RANGE": 1}}, "args.RANGE", "must be a string"),
        ({"vars": {"S3": "x"}}, "vars.S3", "only variables of the source job's inputs or outputs"),
        ({"vars": {"RANGE": "x"}}, "vars.RANGE", "only variables"),
        ({"vars": {"NOPE": "x"}}, "vars.NOPE", "only variables"),
        ({"vars": {"INPUT": ""}}, "vars.INPUT", "must not be empty"),
        ({"env_vars": {"A=B": "1"}}, "env_vars.A=B", "invalid environment variable"),
        ({"docker": ""}, "docker", "not removed"),
        (
            {"docker": {"image": "i", "password": "plain"}},
            "env.docker.password",
            "Plain text password is prohibited",
        ),
        ({"working_storage": {"size": "50Gb"}}, "working-storage.size", "between 100Gb and 10Tb"),
        ({"working_storage": WorkingStorage(20000)}, "working-storage.size", "between"),
        ({"working_storage": WorkingStorage(200, type="HDD")}, "working-storage.type", "SSD"),
        ({"cloud_instance_types": []}, "cloud-instance-types", "non-empty"),
        ({"cloud_instance_types": ["g1.1", " "]}, "cloud-instance-types", "non-empty"),
        ({"cmd": "rm -rf /"}, "cmd", "cannot be overridden on fork"),
        ({"python": "auto"}, "env.python", "cannot be overridden on fork"),
        ({"s3_mounts": []}, "s3-mounts", "cannot be overridden"),
        ({"datasets": []}, "datasets", "cannot be overridden"),
        ({"attach_project_disk": True}, "flags", "cannot be overridden"),
        ({"flags": []}, "flags", "cannot be overridden"),
        ({"whatever": 1}, "whatever", "cannot be overridden"),
    ],
)
def test_refused_overrides_name_the_field(
    source: JobConfig, overrides: dict[str, object], field: str, fragment: str
) -> None:
    with pytest.raises(Invalid) as e:
        apply_fork(source, **overrides)  # type: ignore[arg-type]
    assert e.value.field == field, e.value.detail
    assert fragment in e.value.detail


def test_forks_can_be_forked(source: JobConfig) -> None:
    first = apply_fork(source, args={"RANGE": "1"})
    second = apply_fork(first, args={"RANGE": "2"}, name="third")
    assert second.args["RANGE"] == "2" and second.name == "third"
