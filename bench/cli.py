"""Start-up of the ``mip`` command line, against importing FastAPI and SQLAlchemy alone.

Prints one JSON object of figures on stdout; progress goes to stderr::

    .venv/bin/python -m bench.cli [--runs 9]

Each command runs in a fresh interpreter, as a user's shell would start it, ``--runs`` times
after one untimed warm-up run (the OS file cache); the figure is the median wall time. The
baseline, ``python -c "import fastapi, sqlalchemy"``, is measured in the same run and in the
same round-robin order, so a busy machine slows both alike: the ratios are what compare
across machines. ``mip orgs list`` also runs against a migrated SQLite database, to show a
whole tenancy command (connect, query, print) and not only its help.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

console = Console(stderr=True)
PYTHON = sys.executable
BASELINE = "import fastapi, sqlalchemy"
COMMANDS: dict[str, list[str]] = {
    "mip --help": ["--help"],
    "mip orgs --help": ["orgs", "--help"],
    "mip billing report --help": ["billing", "report", "--help"],
    "mip audit verify --help": ["audit", "verify", "--help"],
    "mip orgs list --json": ["orgs", "list", "--json"],
    "mip asr --help": ["asr", "--help"],
}


def _argv(args: list[str]) -> list[str]:
    return [PYTHON, "-m", "app.cli", *args]


def _time(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - start


def _machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cli", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--runs", type=int, default=9, help="timed runs per command (default 9)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mip-bench-cli-") as tmp:
        env = {**os.environ, "MIP_DATA_DIR": str(Path(tmp) / "var"), "MIP_ENV": "development"}
        subprocess.run(_argv(["migrate"]), env=env, check=True, capture_output=True)
        argvs = {"baseline": [PYTHON, "-c", BASELINE]}
        argvs.update({name: _argv(command) for name, command in COMMANDS.items()})
        for argv in argvs.values():
            _time(argv, env)  # warm the file cache
        seconds: dict[str, list[float]] = {name: [] for name in argvs}
        for run in range(args.runs):
            for name, argv in argvs.items():
                seconds[name].append(_time(argv, env))
            console.log(f"round {run + 1}/{args.runs} done")
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    base = medians["baseline"]
    result = {
        "machine": _machine(),
        "parameters": {"runs": args.runs, "baseline": f'python -c "{BASELINE}"'},
        "baseline_s": round(base, 3),
        "commands": {
            name: {
                "median_s": round(medians[name], 3),
                "ratio_to_baseline": round(medians[name] / base, 2),
            }
            for name in COMMANDS
        },
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
