"""config.yaml parsing (spec §5.2): every key, valid and invalid, each error naming its field."""

from __future__ import annotations

import json
import textwrap

import pytest

from atoll.errors import Invalid
from atoll.jobspec import (
    ALL_CAPABILITIES,
    DockerImage,
    EnvVar,
    GracefulShutdown,
    JobConfig,
    OutputDataset,
    PipOptions,
    PythonEnv,
    ResourceMount,
    Spark,
    VariablePath,
    WorkingStorage,
    parse_config,
    parse_config_data,
    unsupported_keys,
)

S3 = "s3connector000000001"
S3B = "s3connector000000002"
DS = "dataset0000000000001"


def parse(text: str) -> tuple[JobConfig, list[str]]:
    return parse_config(textwrap.dedent(text))


def cfg_of(text: str) -> JobConfig:
    return parse(text)[0]


def error_of(text: str) -> Invalid:
    with pytest.raises(Invalid) as e:
        parse(text)
    return e.value


# The example of spec §5.2, with real-looking IDs in place of the <placeholders>.
EXAMPLE = f"""
name: simple-python-script
desc: Program description
cmd: >
  python3 src/main.py --params ${{PARAMS}} --features ${{{S3}}}/features.tsv
  --validate ${{CIFAR}}/val.json --normalizer ${{DS_PROJECT_HOME}}/misc/norm.bin
  --model ${{MODEL}} --epochs 5
args:
  EPOCHS: "5"
inputs:
  - misc/logging.yaml
  - /usr/share/params.json:
      var: PARAMS
outputs:
  - data/model.bin: MODEL
  - other/metrics.png
s3-mounts:
  - {S3}
datasets:
  - {DS}:
      var: CIFAR
env:
  vars:
    - DEVICE_COUNT: "8"
    - PYTHONBUFFERED
  docker: b1gimage000000000000
  python: auto
flags:
  - attach-project-disk
cloud-instance-types: [g2.1, g1.1]
working-storage: {{type: SSD, size: 150Gb}}
graceful-shutdown: {{signal: SIGTERM, timeout: 15s}}
output-datasets:
  - {{name: job-test-dataset-1, var: OUT_DS, description: "Description", size: 100Gb, labels: {{a: b}}}}
spark:
  connector: {S3B}
"""


def test_spec_example_parses_into_every_field() -> None:
    cfg, warnings = parse_config(EXAMPLE)
    assert warnings == []
    assert cfg.name == "simple-python-script"
    assert cfg.desc == "Program description"
    assert cfg.cmd.startswith("python3 src/main.py --params ${PARAMS}")
    assert cfg.cmd.endswith("--epochs 5")  # folded, stripped
    assert cfg.args == {"EPOCHS": "5"}
    assert cfg.inputs == (VariablePath("misc/logging.yaml"), VariablePath("/usr/share/params.json", "PARAMS"))
    assert cfg.outputs == (VariablePath("data/model.bin", "MODEL"), VariablePath("other/metrics.png"))
    assert cfg.s3_mounts == (ResourceMount(S3),)
    assert cfg.datasets == (ResourceMount(DS, "CIFAR"),)
    assert cfg.env.vars == (EnvVar("DEVICE_COUNT", "8"), EnvVar("PYTHONBUFFERED", None))
    assert cfg.env.docker == "b1gimage000000000000"
    assert cfg.env.python == PythonEnv(type="auto")
    assert cfg.attach_project_disk
    assert cfg.cloud_instance_types == ("g2.1", "g1.1")
    assert cfg.working_storage == WorkingStorage(size_gb=150)
    assert cfg.graceful_shutdown == GracefulShutdown("SIGTERM", 15.0)
    assert cfg.graceful_shutdown.signal_number == 15
    assert cfg.output_datasets == (
        OutputDataset("job-test-dataset-1", "OUT_DS", 100, "Description", {"a": "b"}),
    )
    assert cfg.spark == Spark(S3B)
    assert cfg.variables == ["PARAMS", "MODEL", S3, "CIFAR", "EPOCHS", "OUT_DS"]


def test_spec_example_unsupported_keys_are_refused_by_capability() -> None:
    cfg, _ = parse_config(EXAMPLE)
    refused = unsupported_keys(cfg, set())
    assert [f for f, _ in refused] == [
        "env.docker",
        "s3-mounts",
        "datasets",
        "flags",
        "working-storage",
        "graceful-shutdown",
        "output-datasets",
        "spark",
    ]
    assert ("s3-mounts", "s3-mounts: S3 connectors are not available on this installation") in refused
    assert unsupported_keys(cfg, ALL_CAPABILITIES) == []
    partial = unsupported_keys(cfg, ALL_CAPABILITIES - {"spark", "datasets"})
    assert [f for f, _ in partial] == ["datasets", "spark"]
    # Unknown capability names grant nothing.
    assert len(unsupported_keys(cfg, {"gpu", "s3"})) == 8


def test_minimal_config_defaults() -> None:
    cfg, warnings = parse("cmd: python main.py\n")
    assert warnings == []
    assert cfg == JobConfig(cmd="python main.py")
    assert cfg.cloud_instance_types == ("c1.4",)
    assert cfg.args == {} and cfg.inputs == () and cfg.env.python is None and cfg.env.docker is None
    assert cfg.working_storage is None and cfg.graceful_shutdown is None and cfg.spark is None
    assert not cfg.attach_project_disk
    assert unsupported_keys(cfg, set()) == []


def test_round_trip_through_json() -> None:
    cfg, _ = parse_config(EXAMPLE)
    stored = json.loads(json.dumps(cfg.to_dict()))
    assert JobConfig.from_dict(stored) == cfg
    manual = cfg_of(
        """
        cmd: python main.py
        env:
          docker: {image: "cr.example/app:1", username: json_key, password: {secret-id: registry-key}}
          python:
            type: manual
            version: "3.11"
            requirements-file: requirements.txt
            local-paths: []
            pip:
              index-url: "https://pypi.org/simple"
              extra-index-urls: [a, b]
              trusted-hosts: [h]
              no-deps: "true"
        """
    )
    again = JobConfig.from_dict(json.loads(json.dumps(manual.to_dict())))
    assert again == manual
    assert isinstance(again.env.docker, DockerImage)
    assert again.env.python is not None and again.env.python.local_paths == ()
    assert again.env.python.pip == PipOptions("https://pypi.org/simple", ("a", "b"), ("h",), True)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"cmd": "x", "surprise": 1}, "config.surprise"),
        ({"cmd": "x", "inputs": "a"}, "config.inputs"),
        ({"cmd": "x", "inputs": [{"path": 1}]}, "config.inputs[0].path"),
        ({"name": "x"}, "config"),
    ],
)
def test_from_dict_checks_structure(data: dict[str, object], field: str) -> None:
    with pytest.raises(Invalid) as e:
        JobConfig.from_dict(data)
    assert e.value.field == field


# ------------------------------------------------------------------------------ invalid configs

INVALID = [
    # yaml, field, fragment of the message
    ("", "config", "config is empty"),
    ("- a\n- b\n", "config", "must be a map"),
    ("cmd: [\n", "config", "not valid YAML at line"),
    ("name: x\n", "cmd", "cmd is required"),
    ("cmd: ''\n", "cmd", "cmd is empty"),
    ("cmd: '   '\n", "cmd", "cmd is empty"),
    ("cmd: [a]\n", "cmd", "must be a string"),
    ("cmd: python ${NOPE}\n", "cmd", "${NOPE} is not defined"),
    ("cmd: echo ${HOME:-x}\n", "cmd", "is not defined"),
    ("cmd: ls ${DS_PROJECT_HOME}\n", "cmd", "without the `attach-project-disk` flag"),
    ("cmd: x\nname: [a]\n", "name", "must be a string"),
    ("cmd: x\ndesc: {a: b}\n", "desc", "must be a string"),
    # args
    ("cmd: x\nargs: [a]\n", "args", "must be a map"),
    ("cmd: x\nargs: {A: [1]}\n", "args.A", "must be a string"),
    ("cmd: x\nargs: {'bad name': 1}\n", "args.bad name", "variable name"),
    ("cmd: x\nargs: {DS_PROJECT_HOME: 1}\n", "args.DS_PROJECT_HOME", "reserved"),
    (f"cmd: x\nargs: {{{'A' * 51}: 1}}\n", f"args.{'A' * 51}", "1-50 characters"),
    # inputs / outputs: three forms, relative paths without '..' unless a var is given
    ("cmd: x\ninputs: a.txt\n", "inputs", "must be a list"),
    ("cmd: x\ninputs: [a.txt, /etc/passwd]\n", "inputs[1]", "must be relative"),
    ("cmd: x\ninputs: [a.txt, b.txt, ../up.txt]\n", "inputs[2]", "without '..'"),
    ("cmd: x\ninputs: ['C:\\\\data\\\\a.txt']\n", "inputs[0]", "must be relative"),
    ("cmd: x\ninputs: [{a: X, b: Y}]\n", "inputs[0]", "one path to one variable"),
    ("cmd: x\ninputs: [{a: {var: X, mode: r}}]\n", "inputs[0]", "only the `var` parameter"),
    ("cmd: x\ninputs: [{a: [X]}]\n", "inputs[0]", "must be a name"),
    ("cmd: x\ninputs: [[a]]\n", "inputs[0]", "must be a path"),
    ("cmd: x\ninputs: [{a: 'bad var'}]\n", "inputs[0]", "variable name"),
    ("cmd: x\ninputs: [{a: DS_PROJECT_HOME}]\n", "inputs[0]", "reserved"),
    ("cmd: x\noutputs: [/tmp/out.bin]\n", "outputs[0]", "must be relative"),
    ("cmd: x\noutputs: [ok.txt, {'': X}]\n", "outputs[1]", "must not be empty"),
    # s3-mounts / datasets
    ("cmd: x\ns3-mounts: [NOT-AN-ID]\n", "s3-mounts[0]", "invalid resource ID"),
    (f"cmd: x\ns3-mounts: [{S3}, {{abc: V}}]\n", "s3-mounts[1]", "invalid resource ID"),
    ("cmd: x\ndatasets: [{short: {var: D}}]\n", "datasets[0]", "invalid resource ID"),
    (f"cmd: x\ndatasets: [{{{DS}: {{var: 'a b'}}}}]\n", "datasets[0]", "variable name"),
    # unique variables across every kind
    ("cmd: x\ninputs: [{a: X}]\noutputs: [{b: X}]\n", "outputs[0]", "defined twice (also in inputs[0])"),
    ("cmd: x\ninputs: [{a: X}, {b: X}]\n", "inputs[1]", "defined twice"),
    ("cmd: x\nargs: {X: '1'}\ninputs: [{a: X}]\n", "args.X", "defined twice"),
    (f"cmd: x\ns3-mounts: [{S3}]\nargs: {{{S3}: '1'}}\n", f"args.{S3}", "defined twice"),
    (f"cmd: x\ndatasets: [{{{DS}: D}}]\noutputs: [{{o: D}}]\n", "datasets[0]", "defined twice"),
    (
        "cmd: x\noutputs: [{o: D}]\noutput-datasets: [{name: n, var: D, size: 1Gb}]\n",
        "output-datasets[0].var",
        "defined twice",
    ),
    # env.vars
    ("cmd: x\nenv: [a]\n", "env", "must be a map"),
    ("cmd: x\nenv: {vars: A}\n", "env.vars", "must be a list"),
    ("cmd: x\nenv: {vars: [{A: '1', B: '2'}]}\n", "env.vars[0]", "`- NAME: value`"),
    ("cmd: x\nenv: {vars: [[A]]}\n", "env.vars[0]", "`- NAME: value`"),
    ("cmd: x\nenv: {vars: [{A: [1]}]}\n", "env.vars[0]", "must be a string"),
    ("cmd: x\nenv: {vars: ['A=B']}\n", "env.vars[0]", "invalid environment variable name"),
    ("cmd: x\nenv: {vars: [A, {A: '1'}]}\n", "env.vars[1]", "set twice"),
    ("cmd: x\nenv: {vars: {A: [1]}}\n", "env.vars.A", "must be a string"),
    # env.docker
    ("cmd: x\nenv: {docker: [a]}\n", "env.docker", "must be an image ID"),
    ("cmd: x\nenv: {docker: {username: u}}\n", "env.docker.image", "image is required"),
    (
        "cmd: x\nenv: {docker: {image: ubuntu:focal, username: u, password: hunter2}}\n",
        "env.docker.password",
        "Plain text password is prohibited. Use DataSphere secrets instead of plain passwords",
    ),
    ("cmd: x\nenv: {docker: {image: i, password: {secret: s}}}\n", "env.docker.password", "{secret-id:"),
    (
        "cmd: x\nenv: {docker: {image: i, password: {secret-id: 1bad}}}\n",
        "env.docker.password.secret-id",
        "secret",
    ),
    (
        "cmd: x\nenv: {docker: {image: i, password: {secret-id: bad-}}}\n",
        "env.docker.password.secret-id",
        "secret",
    ),
    # env.python
    ("cmd: x\nenv: {python: manual}\n", "env.python", "must be `auto` or a map"),
    ("cmd: x\nenv: {python: [auto]}\n", "env.python", "must be `auto` or a map"),
    ("cmd: x\nenv: {python: {version: '3.10'}}\n", "env.python.type", "type is required"),
    ("cmd: x\nenv: {python: {type: conda}}\n", "env.python.type", "auto or manual"),
    ("cmd: x\nenv: {python: {type: manual}}\n", "env.python", "at least one of"),
    (
        "cmd: x\nenv: {python: {type: manual, version: '2.7'}}\n",
        "env.python.version",
        "unsupported Python version",
    ),
    ("cmd: x\nenv: {python: {type: manual, version: '3'}}\n", "env.python.version", "unsupported"),
    ("cmd: x\nenv: {python: {type: manual, version: '3.10.1.2'}}\n", "env.python.version", "unsupported"),
    ("cmd: x\nenv: {python: {type: manual, version: [3]}}\n", "env.python.version", "must be a string"),
    (
        "cmd: x\nenv: {python: {type: manual, requirements-file: [r]}}\n",
        "env.python.requirements-file",
        "string",
    ),
    (
        "cmd: x\nenv: {python: {type: manual, local-paths: a.py}}\n",
        "env.python.local-paths",
        "must be a list",
    ),
    (
        "cmd: x\nenv: {python: {type: auto, root-paths: [[a]]}}\n",
        "env.python.root-paths[0]",
        "must be a string",
    ),
    (
        "cmd: x\nenv: {python: {type: manual, root-paths: [a.py], local-paths: [b.py]}}\n",
        "env.python.local-paths",
        "mutually exclusive",
    ),
    ("cmd: x\nenv: {python: {type: auto, pip: [a]}}\n", "env.python.pip", "must be a map"),
    ("cmd: x\nenv: {python: {type: auto, pip: {index-url: [a]}}}\n", "env.python.pip.index-url", "string"),
    (
        "cmd: x\nenv: {python: {type: auto, pip: {extra-index-urls: a}}}\n",
        "env.python.pip.extra-index-urls",
        "list",
    ),
    (
        "cmd: x\nenv: {python: {type: auto, pip: {trusted-hosts: [[h]]}}}\n",
        "env.python.pip.trusted-hosts[0]",
        "str",
    ),
    # flags
    ("cmd: x\nflags: attach-project-disk\n", "flags", "must be a list"),
    # cloud-instance-types
    ("cmd: x\ncloud-instance-types: {a: b}\n", "cloud-instance-types", "must be a list"),
    ("cmd: x\ncloud-instance-types: [g1.1, '']\n", "cloud-instance-types[1]", "must not be empty"),
    # working-storage
    ("cmd: x\nworking-storage: 150Gb\n", "working-storage", "must be a map"),
    ("cmd: x\nworking-storage: {type: HDD, size: 150Gb}\n", "working-storage.type", "must be SSD"),
    ("cmd: x\nworking-storage: {type: SSD}\n", "working-storage.size", "size is required"),
    ("cmd: x\nworking-storage: {size: 99Gb}\n", "working-storage.size", "between 100Gb and 10Tb"),
    ("cmd: x\nworking-storage: {size: 11Tb}\n", "working-storage.size", "between 100Gb and 10Tb"),
    ("cmd: x\nworking-storage: {size: lots}\n", "working-storage.size", "must be a size"),
    # graceful-shutdown
    ("cmd: x\ngraceful-shutdown: {signal: SIGKILL}\n", "graceful-shutdown.signal", "must be one of SIGHUP"),
    ("cmd: x\ngraceful-shutdown: {signal: sigterm}\n", "graceful-shutdown.signal", "must be one of"),
    ("cmd: x\ngraceful-shutdown: {timeout: soon}\n", "graceful-shutdown.timeout", "must be a duration"),
    ("cmd: x\ngraceful-shutdown: {timeout: '15'}\n", "graceful-shutdown.timeout", "must be a duration"),
    ("cmd: x\ngraceful-shutdown: [SIGTERM]\n", "graceful-shutdown", "must be a map"),
    # output-datasets
    ("cmd: x\noutput-datasets: {name: a}\n", "output-datasets", "must be a list"),
    ("cmd: x\noutput-datasets: [a]\n", "output-datasets[0]", "must be a map"),
    ("cmd: x\noutput-datasets: [{var: V, size: 1Gb}]\n", "output-datasets[0].name", "name is required"),
    ("cmd: x\noutput-datasets: [{name: n, size: 1Gb}]\n", "output-datasets[0].var", "var is required"),
    ("cmd: x\noutput-datasets: [{name: n, var: V}]\n", "output-datasets[0].size", "size is required"),
    (
        "cmd: x\noutput-datasets: [{name: n, var: 'V V', size: 1Gb}]\n",
        "output-datasets[0].var",
        "variable name",
    ),
    ("cmd: x\noutput-datasets: [{name: n, var: V, size: 0Gb}]\n", "output-datasets[0].size", "at least 1Gb"),
    (
        "cmd: x\noutput-datasets: [{name: n, var: V, size: 1Gb, labels: [a]}]\n",
        "output-datasets[0].labels",
        "map",
    ),
    (
        "cmd: x\noutput-datasets: [{name: n, var: A, size: 1Gb}, {name: n, var: B, size: 1Gb}]\n",
        "output-datasets[1].name",
        "used twice",
    ),
    # spark
    ("cmd: x\nspark: abc\n", "spark", "must be a map"),
    ("cmd: x\nspark: {}\n", "spark.connector", "connector is required"),
    ("cmd: x\nspark: {connector: {name: a}}\n", "spark.connector", "connector is required"),
]


@pytest.mark.parametrize(
    ("text", "field", "fragment"), INVALID, ids=[f"{i}-{c[1]}" for i, c in enumerate(INVALID)]
)
def test_invalid_config_names_the_field(text: str, field: str, fragment: str) -> None:
    err = error_of(text)
    assert err.field == field, err.detail
    assert fragment in err.detail
    assert "\n" not in err.detail  # one line


def test_list_limits_are_100_entries() -> None:
    for key in ("inputs", "outputs"):
        ok = cfg_of(f"cmd: x\n{key}: [{', '.join(f'f{i}' for i in range(100))}]\n")
        assert len(getattr(ok, key)) == 100
        err = error_of(f"cmd: x\n{key}: [{', '.join(f'f{i}' for i in range(101))}]\n")
        assert err.field == key and "at most 100" in err.detail
    for key in ("s3-mounts", "datasets"):
        ids = [f"{i:020d}" for i in range(101)]
        assert (
            len(getattr(cfg_of(f"cmd: x\n{key}: [{', '.join(ids[:100])}]\n"), key.replace("-", "_"))) == 100
        )
        err = error_of(f"cmd: x\n{key}: [{', '.join(ids)}]\n")
        assert err.field == key and "at most 100" in err.detail


# --------------------------------------------------------------------------------- valid forms


def test_inputs_and_outputs_three_forms_and_vars_anywhere() -> None:
    cfg = cfg_of(
        """
        cmd: run ${A} ${B} ${C}
        inputs:
          - data/a.csv
          - /abs/b.csv: A
          - ../up/c.csv: {var: B}
          - dir/
        outputs:
          - out/result.json
          - /anywhere/model.bin: C
        """
    )
    assert cfg.inputs == (
        VariablePath("data/a.csv"),
        VariablePath("/abs/b.csv", "A"),
        VariablePath("../up/c.csv", "B"),
        VariablePath("dir/"),
    )
    assert cfg.outputs == (VariablePath("out/result.json"), VariablePath("/anywhere/model.bin", "C"))
    # '..' inside a name is not a parent reference
    assert cfg_of("cmd: x\ninputs: [a..b.txt]\n").inputs == (VariablePath("a..b.txt"),)


def test_s3_mounts_and_datasets_forms_and_id_as_variable() -> None:
    cfg = cfg_of(
        f"""
        cmd: ls ${{{S3}}} ${{S}} ${{D}}
        s3-mounts: [{S3}, {{{S3B}: S}}]
        datasets: [{{{DS}: {{var: D}}}}]
        """
    )
    assert cfg.s3_mounts == (ResourceMount(S3), ResourceMount(S3B, "S"))
    assert cfg.datasets == (ResourceMount(DS, "D"),)
    assert [m.name for m in cfg.s3_mounts] == [S3, "S"]


def test_args_are_strings_with_base_loader_semantics() -> None:
    cfg = cfg_of('cmd: grep -C ${RANGE} ${OPTIONS} x\nargs: {RANGE: 0, OPTIONS: "-h -r", ON: true, N: ~}\n')
    assert cfg.args == {"RANGE": "0", "OPTIONS": "-h -r", "ON": "true", "N": "~"}


def test_parse_config_data_reads_json_scalars_as_strings() -> None:
    cfg, _ = parse_config_data({"cmd": "x ${N}", "args": {"N": 5, "F": 1.5, "B": True}, "desc": None})
    assert cfg.args == {"N": "5", "F": "1.5", "B": "true"} and cfg.desc is None


def test_variable_names_allow_letters_digits_dash_underscore() -> None:
    cfg = cfg_of("cmd: echo ${a-B_9}\nargs: {a-B_9: v}\n")
    assert cfg.args == {"a-B_9": "v"}


def test_shell_variables_without_braces_are_left_alone() -> None:
    assert cfg_of("cmd: echo $HOME $1 $$\n").cmd == "echo $HOME $1 $$"


def test_project_home_with_flag() -> None:
    cfg = cfg_of("cmd: ls ${DS_PROJECT_HOME}/data\nflags: [attach-project-disk]\n")
    assert cfg.attach_project_disk and cfg.flags == ("attach-project-disk",)


def test_env_vars_list_and_deprecated_map() -> None:
    cfg, warnings = parse("cmd: x\nenv:\n  vars:\n    - A\n    - B: '2'\n    - C: ''\n")
    assert cfg.env.vars == (EnvVar("A"), EnvVar("B", "2"), EnvVar("C", ""))
    assert warnings == []
    cfg, warnings = parse("cmd: x\nenv:\n  vars:\n    A: '1'\n    B: two\n")
    assert cfg.env.vars == (EnvVar("A", "1"), EnvVar("B", "two"))
    assert warnings == ["env.vars: a map is deprecated; write a list of `- NAME` or `- NAME: value`"]


@pytest.mark.parametrize(
    ("docker", "expected"),
    [
        ("b1gimage000000000000", "b1gimage000000000000"),
        ("system-python-3-10", "system-python-3-10"),
        ("{image: 'ubuntu:focal'}", DockerImage("ubuntu:focal")),
        (
            "{image: cr.yandex/b1g/myenv:0.1, username: json_key, password: {secret-id: PASSWORD}}",
            DockerImage("cr.yandex/b1g/myenv:0.1", "json_key", "PASSWORD"),
        ),
    ],
)
def test_docker_forms(docker: str, expected: object) -> None:
    assert cfg_of(f"cmd: x\nenv:\n  docker: {docker}\n").env.docker == expected


def test_python_auto_forms() -> None:
    assert cfg_of("cmd: x\nenv: {python: auto}\n").env.python == PythonEnv("auto")
    assert cfg_of("cmd: x\nenv: {python: AUTO}\n").env.python == PythonEnv("auto")
    cfg = cfg_of("cmd: x\nenv: {python: {type: auto, root-paths: [a.py, b.py], pip: {no-deps: 'true'}}}\n")
    assert cfg.env.python == PythonEnv("auto", root_paths=("a.py", "b.py"), pip=PipOptions(no_deps=True))
    assert not cfg.env.python.fully_manual


def test_python_auto_ignores_manual_keys_with_warning() -> None:
    cfg, warnings = parse("cmd: x\nenv: {python: {type: auto, version: '3.10', local-paths: [a]}}\n")
    assert cfg.env.python == PythonEnv("auto")
    assert warnings == [
        "env.python.version: ignored with type: auto (use type: manual to set it)",
        "env.python.local-paths: ignored with type: auto (use type: manual to set it)",
    ]


def test_python_manual_full_and_version_reduced_with_warning() -> None:
    cfg, warnings = parse(
        """
        cmd: python main.py
        env:
          python:
            type: manual
            version: 3.10.4
            requirements-file: requirements.txt
            local-paths: [foo.py, lib/]
            pip:
              index-url: https://mirror/simple
              extra-index-urls: [https://a/simple, https://b/simple]
              trusted-hosts: [a, b]
              no-deps: 'true'
        """
    )
    assert cfg.env.python == PythonEnv(
        type="manual",
        version="3.10",
        requirements_file="requirements.txt",
        local_paths=("foo.py", "lib/"),
        pip=PipOptions("https://mirror/simple", ("https://a/simple", "https://b/simple"), ("a", "b"), True),
    )
    assert cfg.env.python.fully_manual
    assert warnings == ["env.python.version: Python version is reduced to major.minor (3.10.4 -> 3.10)"]


def test_python_manual_single_script_and_partial() -> None:
    py = cfg_of(
        "cmd: x\nenv: {python: {type: manual, version: '3.11', requirements-file: r.txt, local-paths: []}}\n"
    )
    assert py.env.python is not None and py.env.python.local_paths == () and py.env.python.fully_manual
    partial = cfg_of("cmd: x\nenv: {python: {type: manual, version: '3.12'}}\n").env.python
    assert partial is not None and not partial.fully_manual and partial.local_paths is None


@pytest.mark.parametrize(
    ("value", "expected", "warned"),
    [("'true'", True, False), ("'false'", False, False), ("true", True, False), ("'True'", False, True),
     ("'yes'", False, True), ("'1'", False, True)],
)  # fmt: skip
def test_no_deps_only_the_string_true(value: str, expected: bool, warned: bool) -> None:
    cfg, warnings = parse(f"cmd: x\nenv: {{python: {{type: auto, pip: {{no-deps: {value}}}}}}}\n")
    assert cfg.env.python is not None and cfg.env.python.pip is not None
    assert cfg.env.python.pip.no_deps is expected
    assert bool(warnings) is warned


def test_cloud_instance_types_forms_and_legacy_key() -> None:
    assert cfg_of("cmd: x\ncloud-instance-types: g1.1\n").cloud_instance_types == ("g1.1",)
    assert cfg_of("cmd: x\ncloud-instance-types: [g2.1, g1.1]\n").cloud_instance_types == ("g2.1", "g1.1")
    assert cfg_of("cmd: x\ncloud-instance-types: []\n").cloud_instance_types == ("c1.4",)
    cfg, warnings = parse("cmd: x\ncloud-instance-type: g1.2\n")
    assert cfg.cloud_instance_types == ("g1.2",)
    assert warnings == ["cloud-instance-type: legacy key; write cloud-instance-types"]
    # the plural wins when both are given, as in DataSphere
    assert cfg_of("cmd: x\ncloud-instance-types: [a]\ncloud-instance-type: b\n").cloud_instance_types == (
        "a",
    )


@pytest.mark.parametrize(
    ("size", "gb"),
    [("150Gb", 150), ("100Gb", 100), ("100GB", 100), ("100 GiB", 100), ("1Tb", 1024), ("10Tb", 10240),
     ("100.5Gb", 101), ("102400Mb", 100), ("102401Mb", 101), (str(100 * 2**30 + 1), 101), ("0.5T", 512)],
)  # fmt: skip
def test_working_storage_sizes_rounded_up_to_whole_gb(size: str, gb: int) -> None:
    assert cfg_of(
        f"cmd: x\nworking-storage: {{type: SSD, size: '{size}'}}\n"
    ).working_storage == WorkingStorage(gb)


@pytest.mark.parametrize(
    ("gs", "expected"),
    [
        ("{}", GracefulShutdown("SIGTERM", None)),
        ("{signal: SIGINT}", GracefulShutdown("SIGINT", None)),
        ("{signal: SIGHUP, timeout: 1m30s}", GracefulShutdown("SIGHUP", 90.0)),
        ("{signal: SIGUSR1, timeout: 2h}", GracefulShutdown("SIGUSR1", 7200.0)),
        ("{signal: SIGUSR2, timeout: 500ms}", GracefulShutdown("SIGUSR2", 0.5)),
        ("{timeout: 1d}", GracefulShutdown("SIGTERM", 86400.0)),
    ],
)
def test_graceful_shutdown(gs: str, expected: GracefulShutdown) -> None:
    assert cfg_of(f"cmd: x\ngraceful-shutdown: {gs}\n").graceful_shutdown == expected


def test_signal_numbers() -> None:
    numbers = {
        s: GracefulShutdown(s).signal_number for s in ("SIGHUP", "SIGINT", "SIGUSR1", "SIGUSR2", "SIGTERM")
    }
    assert numbers == {"SIGHUP": 1, "SIGINT": 2, "SIGUSR1": 10, "SIGUSR2": 12, "SIGTERM": 15}


def test_spark_forms() -> None:
    assert cfg_of(f"cmd: x\nspark: {{connector: {S3}}}\n").spark == Spark(S3)
    assert cfg_of(f"cmd: x\nspark: {{connector: {{id: {S3}}}}}\n").spark == Spark(S3)


def test_unknown_keys_and_flags_are_warned_not_fatal() -> None:
    cfg, warnings = parse(
        """
        cmd: x
        description: hello
        input: [a]
        flags: [attach-project-disk, turbo]
        env:
          python: {type: auto, root-path: [a.py]}
        """
    )
    assert cfg.desc is None and cfg.inputs == ()
    assert warnings == [
        "description: unknown key, ignored; did you mean desc?",
        "input: unknown key, ignored; did you mean inputs?",
        "flags[1]: unknown flag 'turbo', ignored (known: attach-project-disk)",
        "env.python.root-path: unknown key, ignored; did you mean root-paths?",
    ]


def test_empty_sections_are_like_absent_ones() -> None:
    cfg = cfg_of("cmd: x\nargs:\ninputs:\noutputs:\nenv:\nflags:\n")
    assert cfg == JobConfig(cmd="x")
