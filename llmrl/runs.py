"""``llmrl runs [DIR]``: every run under ``runs/`` (pipelines and single runs), newest first, with its status.

A run's ``run_info.json`` says what it was last known to be doing; its lock (``llmrl/runlock.py``) says whether
a process is still at it. A run recorded as running whose lock nobody holds was killed: it is shown as
interrupted, with the stage it stopped in, and ``--resume`` continues it.
"""

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

from llmrl.report import read_leaderboard, read_metrics, stage_summary
from llmrl.runlock import lock_state


@dataclass
class RunRow:
    run: str  # the folder's name (the run id)
    what: str  # the method, or "pipeline NAME"
    status: str  # running / completed / failed / interrupted, with the stage for a pipeline
    steps: str
    elapsed: str
    headline: str  # the main training metric, first -> last
    tmux: str | None  # the tmux session of a running run, if it has one
    started: str  # ISO time, for the order


def list_runs(root: Path) -> list[RunRow]:
    """The runs in ``root`` (each folder with a run_info.json), newest first; one whose run_info.json cannot
    be read is listed as unreadable, never left out."""
    rows = []
    for folder in sorted(Path(root).iterdir()) if Path(root).is_dir() else []:
        if not (folder / "run_info.json").is_file():
            continue
        info = read_info(folder)
        if info is None:
            rows.append(unreadable_row(folder))
            continue
        rows.append(pipeline_row(folder, info) if "pipeline" in info else single_row(folder, info))
    return sorted(rows, key=lambda row: row.started, reverse=True)


def read_info(folder: Path) -> dict | None:
    """The run's run_info.json, or None when it is missing, not JSON or not an object."""
    try:
        info = json.loads((folder / "run_info.json").read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def unreadable_row(folder: Path) -> RunRow:
    """A run whose run_info.json is damaged (a disk filled up, a hand edit): listed, saying so."""
    started = datetime.datetime.fromtimestamp((folder / "run_info.json").stat().st_mtime).astimezone().isoformat()
    return RunRow(folder.name, "?", "unreadable run_info.json", "", "", "", None, started)


def single_row(folder: Path, info: dict) -> RunRow:
    holder = lock_state(folder)
    status = info.get("status", "?")
    if status == "running" and holder is None:
        status = "interrupted"  # recorded as running, and no process holds its lock: it was killed
    summary = stage_summary(folder)
    return RunRow(
        run=folder.name,
        what=info.get("method", "?"),
        status=status,
        steps=steps_of(folder, info),
        elapsed=elapsed(info.get("start_time"), info.get("wall_seconds"), running=holder is not None),
        headline=summary["training"],
        tmux=(holder or {}).get("tmux"),
        started=info.get("start_time") or "",
    )


def pipeline_row(folder: Path, info: dict) -> RunRow:
    holder = lock_state(folder)
    selected = info.get("selected_stages") or list(info.get("stages", {}))
    stages = info.get("stages", {})
    done = [s for s in selected if stages.get(s, {}).get("status") == "completed"]
    current = next((s for s in selected if stages.get(s, {}).get("status") != "completed"), None)
    state = stages.get(current, {}).get("status") if current else None
    position = f"{current} {selected.index(current) + 1}/{len(selected)}" if current else ""
    if holder is not None:
        status = f"running {position}"
    elif current is None:
        status = "completed"
    elif state in ("failed", "interrupted"):
        status = f"{state} {position}"
    elif state == "running" or done:  # killed while a stage ran (or between stages)
        status = f"interrupted {position}"
    else:
        status = "not started"
    last = current if current and (folder / current / "metrics.jsonl").is_file() else (done[-1] if done else None)
    wall = sum(stages.get(s, {}).get("wall_seconds", 0) for s in selected)
    leaderboard = read_leaderboard(folder)
    if leaderboard:  # the best policy on held-out data
        best = max(leaderboard, key=lambda r: r["model_reward"]["mean"])
        headline = f"{best['policy']} {best['model_reward']['mean']:.3f} ({best['reward_improvement']['mean']:+.3f})"
    else:
        headline = f"{last}: {stage_summary(folder / last)['training']}" if last and last != "eval" else ""
    return RunRow(
        run=folder.name,
        what=f"pipeline {info.get('pipeline', '?')}",
        status=status,
        steps=f"{len(done)}/{len(selected)}",  # stages
        elapsed=elapsed(info.get("created"), wall, running=holder is not None),
        headline=headline,
        tmux=(holder or {}).get("tmux"),
        started=info.get("created") or "",
    )


def steps_of(folder: Path, info: dict) -> str:
    records = read_metrics(folder) if (folder / "metrics.jsonl").is_file() else []
    step = max((r.get("step", 0) for r in records), default=0)
    total = (info.get("config") or {}).get("max_steps")
    return f"{step}/{total}" if total else str(step)


def elapsed(start: str | None, wall_seconds: float | None, running: bool) -> str:
    """How long it ran: until now while it runs, else the recorded wall time."""
    seconds = wall_seconds
    if running and start:
        seconds = (datetime.datetime.now().astimezone() - datetime.datetime.fromisoformat(start)).total_seconds()
    if not seconds:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def runs_table(rows: list[RunRow], root: Path):
    """The rows as a table that fits 80 columns (the headline wraps, nothing else)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    caption = "a pipeline's steps are its stages, its headline the best policy on held-out data"
    table = Table(title=f"runs in {root}", caption=caption, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    for column in ("run", "what", "status", "steps", "time", "headline"):
        table.add_column(column, no_wrap=column != "headline")
    styles = {"running": "bold green", "completed": "", "failed": "bold red", "interrupted": "yellow"}
    for row in rows:
        status = row.status + (f" (tmux {row.tmux})" if row.tmux else "")
        style = styles.get(row.status.split()[0], "")
        table.add_row(row.run, row.what, Text(status, style=style), row.steps, row.elapsed, row.headline)
    return table
