"""Run the real `atoll` command as a subprocess, as one user with their own config dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ATOLL = str(Path(sys.executable).with_name("atoll"))
# Where the CLI subprocesses keep compiled bytecode. With PYTHONDONTWRITEBYTECODE set (as in
# some sandboxes) every `atoll` start would recompile Typer, pydantic and httpx from source,
# doubling its cost; a cache outside the source tree keeps starts as quick as on a normal install.
PYCACHE = Path(tempfile.gettempdir()) / f"atoll-e2e-pycache-{os.getuid()}"


@dataclass
class Result:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"atoll {' '.join(self.args)} -> {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"


class Cli:
    """One person at a terminal: their own ATOLL_CONFIG_DIR, nothing inherited from ours."""

    def __init__(self, config_dir: Path, env: dict[str, str] | None = None) -> None:
        self.config_dir = config_dir
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ATOLL_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        base.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE))
        self.env = {
            **base,
            "ATOLL_CONFIG_DIR": str(config_dir),
            "COLUMNS": "200",
            "NO_COLOR": "1",
            **(env or {}),
        }

    def run(self, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> Result:
        proc = subprocess.run(
            [ATOLL, *args],
            env={**self.env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Result(args, proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, env: dict[str, str] | None = None) -> Result:
        r = self.run(*args, env=env)
        assert r.code == 0, str(r)
        assert "Traceback" not in r.err, str(r)
        return r

    def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """Run with --format json and parse stdout (which must be JSON and nothing else)."""
        return json.loads(self.ok(*args, "--format", "json", env=env).out)

    def fail(self, *args: str, code: int = 1, env: dict[str, str] | None = None) -> str:
        """Run a command that must fail: one `error:` line on stderr, no traceback, exit `code`."""
        r = self.run(*args, env=env)
        assert r.code == code, str(r)
        lines = r.err.strip().splitlines()
        assert len(lines) == 1, str(r)
        assert lines[0].startswith("error: "), str(r)
        return lines[0]

    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.config_dir / "config.json").read_text())
        return data
