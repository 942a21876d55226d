"""Run one notebook top to bottom and write the values of named variables as JSON.

This file runs *inside* a project's notebook environment (JupyterLab's, plus what the project
installed), not in Atoll's: it may import only the standard library, nbformat and nbclient. The
notebook controller copies it into the run's private directory and starts it as a Workload:

    python runner.py NOTEBOOK OUTPUTS_JSON '["name", ...]'

Inputs arrive as env vars (the kernel inherits them). The executed notebook is written beside the
outputs (``executed.ipynb``) so a failed run can be read cell by cell. Exit status: 0 when every
cell ran and every named variable exists; 1 otherwise, with the reason on stderr.
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

import nbformat  # type: ignore[import-not-found]
from nbclient import NotebookClient  # type: ignore[import-not-found]
from nbclient.exceptions import CellExecutionError  # type: ignore[import-not-found]

COLLECT = """
def __atoll_collect(names, path):
    import json as _json
    g = globals()
    out, missing = {}, []
    for n in names:
        if n not in g:
            missing.append(n)
            continue
        try:
            _json.dumps(g[n])
            out[n] = g[n]
        except (TypeError, ValueError):
            out[n] = repr(g[n])
    with open(path, "w") as f:
        _json.dump({"values": out, "missing": missing}, f)
__atoll_collect(NAMES, PATH)
del __atoll_collect
"""


def _secret_values() -> list[str]:
    """The values of the project's secrets in this run's environment (the runtime names them in
    ATOLL_SECRET_NAMES), longest first so that one inside another is hidden whole."""
    names = [n for n in os.environ.get("ATOLL_SECRET_NAMES", "").split(",") if n]
    return sorted({os.environ[n] for n in names if os.environ.get(n)}, key=len, reverse=True)


def _redact(node: Any, secrets: list[str]) -> Any:
    """Replace every secret value in the notebook's strings with ***, as the logs do."""
    if not secrets:
        return node
    if isinstance(node, str):
        for value in secrets:
            node = node.replace(value, "***")
        return node
    if isinstance(node, list):
        node[:] = [_redact(v, secrets) for v in node]
    elif isinstance(node, dict):
        for k in list(node):
            node[k] = _redact(node[k], secrets)
    return node


def main() -> int:
    notebook, outputs, names = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    nb = nbformat.read(notebook, as_version=4)
    collect = COLLECT.replace("NAMES", repr(list(names))).replace("PATH", repr(str(outputs)))
    nb.cells.append(nbformat.v4.new_code_cell(collect))
    client = NotebookClient(
        nb, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}
    )
    try:
        client.execute()
    except CellExecutionError as e:
        print(f"a cell failed: {e}", file=sys.stderr)
        return 1
    finally:
        nb.cells.pop()  # the collector is ours, not the user's
        _redact(nb, _secret_values())  # the executed notebook outlives the run: no secret in it
        nbformat.write(nb, outputs.with_name("executed.ipynb"))
    result = json.loads(outputs.read_text())
    if result["missing"]:
        print(
            f"output variables not defined by the notebook: {', '.join(result['missing'])}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
