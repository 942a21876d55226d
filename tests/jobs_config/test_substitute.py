"""``${VAR}`` substitution into cmd, quoted for the shell; checked by running the real shell."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from atoll.errors import Invalid
from atoll.jobspec import parse_config, render_cmd, substitute
from atoll.jobspec.variables import references


def argv(cmd: str) -> list[str]:
    """The words the shell passes to a program for ``cmd``."""
    # `set --` keeps the shell's own word splitting and quoting: exactly what a job sees.
    out = subprocess.run(
        ["sh", "-c", f"set -- {cmd}; for a; do printf '%s\\0' \"$a\"; done"], capture_output=True
    )
    assert out.returncode == 0, (cmd, out.stderr)
    return out.stdout.decode().split("\0")[:-1]


def test_plain_values_are_inserted_as_they_are() -> None:
    assert substitute(
        "python main.py --in ${IN} --out ${OUT}/x", {"IN": "/job/in/a.csv", "OUT": "/job/out"}
    ) == ("python main.py --in /job/in/a.csv --out /job/out/x")


@pytest.mark.parametrize(
    "value",
    ["/data/with space.csv", "it's", 'say "hi"', "$HOME", "`id`", "a\\b", "semi;colon && rm -rf /", "*", ""],
)
@pytest.mark.parametrize("template", ["${V}", '"${V}"', "'${V}'", "pre${V}post", '"pre ${V} post"'])
def test_values_stay_one_word_in_every_quoting_context(value: str, template: str) -> None:
    cmd = substitute(template, {"V": value})
    expected = template.replace('"', "").replace("'", "").replace("${V}", value)
    assert argv(cmd) == [expected]


def test_args_are_verbatim_so_options_split_into_words() -> None:
    # The spec's fork example: OPTIONS "-h -r" gives grep two options.
    cfg, _ = parse_config(
        textwrap.dedent(
            """
            cmd: grep -C ${RANGE} ${OPTIONS} -f ${PATTERN} ${INPUT} > ${OUTPUT}
            args: {RANGE: 0, OPTIONS: "-h -r"}
            inputs: [{pattern.txt: PATTERN}, {input.txt: INPUT}]
            outputs: [{output.txt: OUTPUT}]
            """
        )
    )
    paths = {
        "PATTERN": "/job/in/pattern.txt",
        "INPUT": "/job/in/my input.txt",
        "OUTPUT": "/job/out/output.txt",
    }
    assert render_cmd(cfg, paths) == (
        "grep -C 0 -h -r -f /job/in/pattern.txt '/job/in/my input.txt' > /job/out/output.txt"
    )


def test_shell_variables_and_escapes_are_untouched() -> None:
    assert substitute("echo $HOME ${A} \\$B '$C' \"$D\"", {"A": "a"}) == "echo $HOME a \\$B '$C' \"$D\""
    assert substitute("echo \\\\${A}", {"A": "x y"}) == "echo \\\\'x y'"


def test_missing_value_names_cmd() -> None:
    with pytest.raises(Invalid) as e:
        substitute("run ${A} ${B}", {"A": "1"})
    assert e.value.field == "cmd" and "${B}" in e.value.detail


def test_render_cmd_maps_resources_and_project_home() -> None:
    s3, ds = "s3connector000000001", "dataset0000000000001"
    cfg, _ = parse_config(
        f"cmd: ls ${{{s3}}} ${{D}} ${{DS_PROJECT_HOME}}/x ${{OUT_DS}}\n"
        f"s3-mounts: [{s3}]\ndatasets: [{{{ds}: D}}]\nflags: [attach-project-disk]\n"
        "output-datasets: [{name: n, var: OUT_DS, size: 1Gb}]\n"
    )
    paths = {s3: "/mnt/s3/a", "D": "/mnt/ds/b", "OUT_DS": "/job/ds/out"}
    assert (
        render_cmd(cfg, paths, project_home="/home/project")
        == "ls /mnt/s3/a /mnt/ds/b /home/project/x /job/ds/out"
    )
    with pytest.raises(Invalid) as e:
        render_cmd(cfg, paths)
    assert e.value.field == "flags"


def test_references_in_order_without_duplicates() -> None:
    assert references("${B} ${A} ${B} $C ${D}x") == ["B", "A", "D"]
