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

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench_cli:begin -->", "<!-- bench_cli:end -->"
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
        BEGIN,
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
        END,
    ]
    section = "\n".join(lines)
    print(section)
    if args.no_write:
        return
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nEvery figure names the machine it was measured on.\n"
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
