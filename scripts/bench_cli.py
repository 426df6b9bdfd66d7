"""Measure how fast the CLI answers `--help`, and write the figures to docs/benchmarks.md.

Each command runs in a fresh process, as a user would start it: `repeats` times, reporting median and
minimum wall time. The target (issue 3) is `llmrl --help` under 0.5 s on a 2-core machine.

    .venv/bin/python scripts/bench_cli.py [--repeats 20] [--no-write]
"""

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks_doc import write_section

COMMANDS = (["--help"], ["train", "--help"])
TARGET_SECONDS = 0.5


def llmrl_executable() -> str:
    beside_python = Path(sys.executable).parent / "llmrl"
    found = str(beside_python) if beside_python.exists() else shutil.which("llmrl")
    if not found:
        sys.exit("error: no llmrl executable found; run scripts/setup.sh first")
    return found


def time_command(argv: list[str], repeats: int) -> list[float]:
    subprocess.run(argv, check=True, capture_output=True)  # warm the file cache once
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = model.group(1).strip() if model else cpu
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}, no GPU used"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md as it is")
    args = parser.parse_args()

    executable = llmrl_executable()
    rows = []
    for command in COMMANDS:
        times = time_command([executable, *command], args.repeats)
        rows.append((f"llmrl {' '.join(command)}", statistics.median(times), min(times)))
    lines = [
        "## CLI start",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `scripts/bench_cli.py` ({args.repeats} fresh processes each) "
        f"on {machine()}. Target: `llmrl --help` under {TARGET_SECONDS} s.",
        "",
        "| command | median (s) | min (s) | target met |",
        "| --- | --- | --- | --- |",
        *(
            f"| `{name}` | {med:.3f} | {low:.3f} | {'yes' if med < TARGET_SECONDS else 'NO'} |"
            for name, med, low in rows
        ),
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section("bench_cli", lines)


if __name__ == "__main__":
    main()
