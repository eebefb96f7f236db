"""`kline_etl.run` and the path of the `kline-etl` binary installed with this package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# README "Exit codes".
EXIT_NAMES = {
    0: "ok",
    1: "tasks_failed",
    2: "usage",
    3: "resumable",
    4: "output",
    5: "locked",
    70: "internal",
}


class KlineEtlError(Exception):
    """`kline-etl` exited with a non-zero code.

    `exit_code` is the process's code (README "Exit codes"), `name` its name (`usage`,
    `resumable`, ...), `message` the error lines it printed, `stderr` all of its stderr.
    """

    def __init__(self, exit_code: int, message: str, stderr: str = "") -> None:
        self.exit_code = exit_code
        self.name = EXIT_NAMES.get(exit_code, "unknown")
        self.message = message
        self.stderr = stderr
        super().__init__(f"kline-etl exited {exit_code} ({self.name}): {message}")


@dataclass
class RunResult:
    """A finished run: exit code 0 and what the process printed."""

    exit_code: int
    stdout: str
    stderr: str


def find_binary() -> str:
    """The `kline-etl` executable: `$KLINE_ETL_BIN`, else the one this package installed
    (the environment's scripts directory), else the first on `PATH`."""
    if env := os.environ.get("KLINE_ETL_BIN"):
        return env
    exe = "kline-etl" + (".exe" if sys.platform == "win32" else "")
    schemes = [sysconfig.get_default_scheme()]
    if sys.platform != "win32":
        schemes.append("posix_user")
    for scheme in schemes:
        candidate = Path(sysconfig.get_path("scripts", scheme)) / exe
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(exe)
    if found is None:
        raise FileNotFoundError(
            "the kline-etl binary is not installed: pip install kline-etl, or set KLINE_ETL_BIN"
        )
    return found


def run(
    pipeline: str | os.PathLike[str] | Mapping[str, Any],
    *args: str,
    quiet: bool = True,
    cwd: str | os.PathLike[str] | None = None,
) -> RunResult:
    """Run one pipeline with `kline-etl run` and wait for it.

    `pipeline` is a pipeline file or the pipeline itself as a mapping (written to a temporary
    file as JSON, which is YAML). `args` are extra `run` flags (`"--full-refresh"`,
    `"--shard", "1/4"`, ...); relative `output.path`s resolve against `cwd` (default: the
    current directory). `quiet` passes `-q --no-progress`. Raises `KlineEtlError` (with the
    exit code and message) when the run does not exit 0.
    """
    with tempfile.TemporaryDirectory(prefix="kline-etl-") as tmp:
        if isinstance(pipeline, Mapping):
            file = Path(tmp) / "pipeline.yaml"
            file.write_text(json.dumps(pipeline), encoding="utf-8")
        else:
            file = Path(pipeline)
        flags = ["-q", "--no-progress"] if quiet else []
        return _call([*flags, "run", str(file), *args], cwd)


def _call(argv: Sequence[str], cwd: str | os.PathLike[str] | None) -> RunResult:
    proc = subprocess.run(
        [find_binary(), *argv],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise KlineEtlError(proc.returncode, _message(proc.stderr), proc.stderr)
    return RunResult(proc.returncode, proc.stdout, proc.stderr)


def _message(stderr: str) -> str:
    """The error lines of `stderr` (`error: ...` and what follows), else its last line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.lstrip().lower().startswith("error"):
            return "\n".join(lines[i:])
    return lines[-1] if lines else "(no message)"


def main() -> None:
    """`python -m kline_etl ARGS`: the binary, with this process's arguments."""
    binary = find_binary()
    if sys.platform == "win32":
        sys.exit(subprocess.call([binary, *sys.argv[1:]]))
    os.execv(binary, [binary, *sys.argv[1:]])
