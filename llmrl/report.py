"""``llmrl report``: a table of a pipeline run's stages and PNG plots of their metrics (matplotlib).

Works on a pipeline run folder (stages in subfolders) or on a single training run folder. With two runs, the
table shows both and each plot overlays them.
"""

import json
import math
from pathlib import Path

# What a stage's plot shows: one panel per group, with up to three of its metrics that the stage logged.
PANELS = {
    "loss": ("loss", "eval_loss", "policy_loss", "value_loss"),
    "reward": ("reward", "score", "rlhf_reward", "rewards/accuracy/mean", "mean_reward"),
    "KL": ("kl", "approxkl"),
    "accuracy / margins": (
        "accuracy",
        "eval_accuracy",
        "margin",
        "rewards/accuracies",
        "rewards/margins",
        "mean_token_accuracy",
        "eval_mean_token_accuracy",
    ),
    "learning rate": ("learning_rate",),
}
STAGE_ORDER = ("sft", "reward", "dpo", "kto", "grpo", "rloo", "ppo", "eval")


def stage_dirs(run: Path) -> dict[str, Path]:
    """Stage name -> folder: a pipeline run's stage subfolders, or the run itself for a single training run."""
    run = Path(run)
    if (run / "metrics.jsonl").is_file() or (run / "results.json").is_file():
        return {run.name: run}
    found = (
        {p.name: p for p in sorted(run.iterdir()) if p.is_dir() and not p.name.startswith(".")} if run.is_dir() else {}
    )
    stages = {
        name: path
        for name, path in found.items()
        if (path / "metrics.jsonl").is_file() or (path / "results.json").is_file()
    }
    if not stages:
        from llmrl.errors import LlmrlError

        raise LlmrlError(f"{run} holds no run: no metrics.jsonl or results.json in it or its subfolders")
    return dict(sorted(stages.items(), key=lambda kv: STAGE_ORDER.index(kv[0]) if kv[0] in STAGE_ORDER else 99))


def read_metrics(stage_dir: Path) -> list[dict]:
    path = stage_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float)) and "train_runtime" not in r]
    return [s for s, _ in points], [v for _, v in points]


def stage_summary(stage_dir: Path) -> dict[str, str]:
    """The headline figures of one stage, as text: status, steps, time, and first -> last of its main metric."""
    info_path = stage_dir / "run_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    results_path = stage_dir / "results.json"
    if results_path.is_file():
        results = json.loads(results_path.read_text())
        low, high = results["win_rate"]["ci95"]
        return {
            "status": "completed",
            "steps": f"{results['num_prompts']} prompts",
            "time (s)": "",
            "headline": f"win rate {results['win_rate']['mean']:.3f} [{low:.3f}, {high:.3f}]; model "
            f"{results['model_reward']['mean']:.3g} vs reference {results['reference_reward']['mean']:.3g}",
        }
    records = read_metrics(stage_dir)
    steps = max((r["step"] for r in records), default=0)
    headline = ""
    for key in ("rewards/accuracy/mean", "score", "eval_accuracy", "rewards/margins", "mean_token_accuracy", "loss"):
        _, values = series(records, key)
        if values:
            window = max(1, min(5, len(values) // 2))
            first, last = sum(values[:window]) / window, sum(values[-window:]) / window
            headline = f"{key}: {first:.3g} -> {last:.3g} (mean of first/last {window} logs)"
            break
    return {
        "status": info.get("status", "?"),
        "steps": str(steps),
        "time (s)": f"{info['wall_seconds']:.0f}" if "wall_seconds" in info else "",
        "headline": headline,
    }


def print_summary(runs: list[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="llmrl run summary")
    for column in ("run", "stage", "status", "steps", "time (s)", "headline"):
        table.add_column(column)
    for run in runs:
        found = stage_dirs(run)
        info_path = Path(run) / "run_info.json"
        recorded = json.loads(info_path.read_text()).get("stages", {}) if info_path.is_file() else {}
        for stage in sorted(set(found) | set(recorded), key=lambda s: STAGE_ORDER.index(s) if s in STAGE_ORDER else 99):
            if stage in found and recorded.get(stage, {}).get("status") != "failed":
                table.add_row(Path(run).name, stage, *stage_summary(found[stage]).values())
            else:  # a stage that failed (maybe before writing anything): the pipeline's record says so
                record = recorded[stage]
                time = f"{record['wall_seconds']:.0f}" if "wall_seconds" in record else ""
                table.add_row(Path(run).name, stage, record.get("status", "?"), "", time, record.get("error") or "")
    Console().print(table)


def write_plots(runs: list[Path]) -> list[Path]:
    """One PNG per stage in the first run's ``plots/`` folder, the second run (if any) overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = Path(runs[0])
    out_dir = (first if len(stage_dirs(first)) > 1 or not (first / "metrics.jsonl").is_file() else first) / "plots"
    out_dir.mkdir(exist_ok=True)
    per_run = [stage_dirs(run) for run in runs]
    if all(len(stages) == 1 for stages in per_run):  # single training runs: compare them with each other
        per_run = [{stage: path for stage, path in zip(per_run[0], stages.values(), strict=True)} for stages in per_run]
    written = []
    for stage, stage_dir in per_run[0].items():
        records = [read_metrics(stage_dir)] + [
            read_metrics(other[stage]) if stage in other else [] for other in per_run[1:]
        ]
        panels = [
            (title, present)
            for title, keys in PANELS.items()
            if (present := [k for k in keys if any(k in r for r in records[0])][:3])
        ]
        if not panels:
            continue
        columns = min(3, len(panels))
        rows = math.ceil(len(panels) / columns)
        figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.4 * rows), squeeze=False)
        for axis, (title, keys) in zip(axes.flat, panels, strict=False):
            for key in keys:
                for run, run_records in zip(runs, records, strict=True):
                    steps, values = series(run_records, key)
                    label = key if len(runs) == 1 else f"{key} ({Path(run).name})"
                    if steps:
                        axis.plot(steps, values, marker="." if len(steps) < 40 else None, label=label)
            axis.set_title(title, fontsize=9)
            axis.set_xlabel("step")
            axis.legend(fontsize=7)
        for axis in list(axes.flat)[len(panels) :]:
            axis.set_visible(False)
        figure.suptitle(f"{stage}", fontsize=11)
        figure.tight_layout()
        path = out_dir / f"{stage}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written
