"""``llmrl report``: a table of a pipeline run's stages, its eval leaderboard, and PNG plots of their metrics.

Works on a pipeline run folder (stages in subfolders) or on a single training run folder. The stage table
gives each stage's training metric (first -> last) and its held-out result: the leaderboard's judge score
against the reference for a policy, the pairwise accuracy on held-out pairs for a reward model. The
leaderboard (``eval/leaderboard.json``) gives each evaluated policy's win rate, mean reward and improvement
over its reference, each with a bootstrap 95% interval. With two runs, the tables show both and each plot
overlays them.
"""

import json
import math
from pathlib import Path

from llmrl.errors import LlmrlError
from llmrl.methods import METHODS
from llmrl.outputs import BEST, SELECTION

# What a stage's plot shows: one panel per group, with up to three of its metrics that the stage logged.
PANELS = {
    "loss": ("loss", "eval_loss", "policy_loss", "value_loss"),
    "reward": ("reward", "score", "rlhf_reward", "rewards/accuracy/mean", "mean_reward"),
    "held-out": ("eval_accuracy", "eval_format", "eval_reward_model", "eval_api", "eval_length"),
    "KL": ("kl", "approxkl"),
    "completion length": ("completions/mean_length", "response_length", "eval_completion_length"),
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
STAGE_ORDER = (*METHODS, "eval")
SHORT_NAMES = {  # metric names as the summary shows them
    "rewards/accuracy/mean": "reward acc",
    "rewards/margins": "margin",
    "mean_token_accuracy": "token acc",
    "accuracy": "pair acc",
}
RESULT_FILES = ("metrics.jsonl", "results.json", "leaderboard.json")  # a folder with one of them holds a run


def stage_dirs(run: Path) -> dict[str, Path]:
    """Stage name -> folder: a pipeline run's stage subfolders, or the run itself for a single training run."""
    run = Path(run)
    if any((run / name).is_file() for name in RESULT_FILES):
        return {run.name: run}
    found = (
        {p.name: p for p in sorted(run.iterdir()) if p.is_dir() and not p.name.startswith(".")} if run.is_dir() else {}
    )
    stages = {name: path for name, path in found.items() if any((path / f).is_file() for f in RESULT_FILES)}
    if not stages:
        raise LlmrlError(f"{run} holds no run: no metrics.jsonl or results.json in it or its subfolders")
    return dict(sorted(stages.items(), key=lambda kv: STAGE_ORDER.index(kv[0]) if kv[0] in STAGE_ORDER else 99))


def read_metrics(stage_dir: Path) -> list[dict]:
    path = stage_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float)) and "train_runtime" not in r]
    return [s for s, _ in points], [v for _, v in points]


def read_leaderboard(run: Path) -> list[dict]:
    path = Path(run) / "eval" / "leaderboard.json"
    return json.loads(path.read_text()) if path.is_file() else []


def stage_summary(stage_dir: Path, leaderboard: list[dict] | None = None) -> dict[str, str]:
    """The headline figures of one stage, as text: status, steps, time, first -> last of its main training
    metric, and its held-out result (from the leaderboard, or the run's own evaluation)."""
    info_path = stage_dir / "run_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if (stage_dir / "leaderboard.json").is_file():
        rows = json.loads((stage_dir / "leaderboard.json").read_text())
        judges = ", ".join(dict.fromkeys(judge_name(row["judge"]) for row in rows))
        return {
            "status": "completed",
            "steps": "",
            "time": "",
            "training": "",
            "held-out": f"{len(rows)} policies, {judges}",
        }
    results_path = stage_dir / "results.json"
    if results_path.is_file():
        results = json.loads(results_path.read_text())
        low, high = results["win_rate"]["ci95"]
        return {
            "status": "completed",
            "steps": "",
            "time": "",
            "training": "",
            "held-out": f"win rate {results['win_rate']['mean']:.3f} [{low:.3f}, {high:.3f}], "
            f"{results['num_prompts']} prompts",
        }
    records = read_metrics(stage_dir)
    steps = max((r["step"] for r in records), default=0)
    training = ""
    for key in ("rewards/accuracy/mean", "score", "rewards/margins", "mean_token_accuracy", "accuracy", "loss"):
        _, values = series(records, key)
        if values:
            window = max(1, min(5, len(values) // 2))
            first, last = sum(values[:window]) / window, sum(values[-window:]) / window
            training = f"{SHORT_NAMES.get(key, key)} {first:.3g} -> {last:.3g}"
            break
    return {
        "status": info.get("status", "?"),
        "steps": str(steps),
        "time": f"{info['wall_seconds']:.0f}s" if "wall_seconds" in info else "",
        "training": training,
        "held-out": held_out(stage_dir.name, records, leaderboard or [])
        + ("; reward hacking?" if any(k.startswith("divergence/") for r in records for k in r) else ""),
    }


def held_out(stage: str, records: list[dict], leaderboard: list[dict]) -> str:
    """A stage's result on held-out data: its leaderboard row (judge score against the reference's), else
    the last held-out accuracy it logged (a reward model's pairwise accuracy), else its held-out task metric."""
    row = next((r for r in leaderboard if r["policy"] == stage), None)
    if row:  # the interval is in the leaderboard table
        gain = row["reward_improvement"]["mean"]
        return f"{row['model_reward']['mean']:.3f} ({gain:+.3f})"
    _, values = series(records, "eval_accuracy")
    if not values:
        return ""
    if stage == "reward" or len(values) == 1:
        return f"{'pair acc' if stage == 'reward' else 'acc'} {values[-1]:.3f}"
    return f"acc {values[0]:.3f} -> {values[-1]:.3f}"


def judge_name(spec: str) -> str:
    """A judge spec as a short name: accuracy, or reward_model for reward_model:runs/x/reward/final."""
    return spec.split(":", 1)[0]


def reference_name(reference: str) -> str:
    """The stage whose model a reference is (runs/x/sft/final -> sft), else the model's own name."""
    path = Path(reference)
    return path.parent.name if path.name in ("final", "merged") else reference


def print_summary(runs: list[Path]) -> None:
    """The run's table (a row per stage) and its leaderboard, each fitting 80 columns."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(80, Console().width))
    for run in runs:
        found = stage_dirs(run)
        leaderboard = read_leaderboard(run)
        info_path = Path(run) / "run_info.json"
        recorded = json.loads(info_path.read_text()).get("stages", {}) if info_path.is_file() else {}
        title = f"llmrl run summary: {Path(run).name}\n(held-out: the judge's mean, and its gain on the reference)"
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("stage", "status", "steps", "time", "training", "held-out"):
            table.add_column(
                column, no_wrap=column != "held-out", justify="right" if column in ("steps", "time") else "left"
            )
        for stage in sorted(set(found) | set(recorded), key=lambda s: STAGE_ORDER.index(s) if s in STAGE_ORDER else 99):
            if stage in found and recorded.get(stage, {}).get("status") != "failed":
                table.add_row(stage, *stage_summary(found[stage], leaderboard).values())
            else:  # a stage that failed (maybe before writing anything): the pipeline's record says so
                record = recorded[stage]
                time = f"{record['wall_seconds']:.0f}s" if "wall_seconds" in record else ""
                table.add_row(stage, record.get("status", "?"), "", time, "", record.get("error") or "")
        console.print(table)
        if leaderboard:
            console.print(leaderboard_table(leaderboard, Path(run).name))


def leaderboard_table(rows: list[dict], run_name: str):
    """Each evaluated policy against its reference, best first: win rate, mean reward, the improvement over
    the reference with its 95% interval, and the mean answer length in words; one line each at 80 columns. A
    policy that is its run's best held-out checkpoint, not its final one, is shown as ``grpo@best:8``."""
    from rich import box
    from rich.table import Table

    judges = {judge_name(row["judge"]) for row in rows}
    judged = f", judged by {judges.pop()}" if len(judges) == 1 else ""
    title = f"leaderboard: {run_name} ({rows[0]['num_prompts']} held-out prompts{judged})"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    headings = ["policy", "vs", *(["judge"] if not judged else []), "win rate", "reward", "improvement [95%]"]
    for heading in [*headings, "length"]:
        table.add_column(heading, no_wrap=True, justify="left" if heading in ("policy", "vs", "judge") else "right")
    for row in sorted(rows, key=lambda r: -r["model_reward"]["mean"]):
        low, high = row["reward_improvement"]["ci95"]
        table.add_row(
            policy_name(row),
            reference_name(row["reference"]),
            *([judge_name(row["judge"])] if not judged else []),
            f"{row['win_rate']['mean']:.3f}",
            f"{row['model_reward']['mean']:.3f}",
            f"{row['reward_improvement']['mean']:+.3f} [{low:+.3f}, {high:+.3f}]",
            f"{row['mean_length']:.1f}",
        )
    return table


DIVERGENCE_STYLE = {"color": "red", "linestyle": "--"}
BEST_STYLE = {"color": "green", "linestyle": ":"}


def stage_marks(stage_dir: Path, records: list[dict]) -> list[tuple[int, str, dict]]:
    """Steps to mark on a stage's plots: where reward hacking was flagged (``divergence/<kind>`` in its
    metrics, ``llmrl.held_out``) and the step its ``best/`` policy was kept at."""
    marks = []
    for record in records:
        for key in record:
            if key.startswith("divergence/"):
                kind = key.removeprefix("divergence/").replace("_", "-")
                marks.append((record["step"], f"reward hacking? ({kind})", DIVERGENCE_STYLE))
    selection = stage_dir / BEST / SELECTION
    if selection.is_file():
        marks.append((json.loads(selection.read_text())["step"], "best/", BEST_STYLE))
    return marks


def policy_name(row: dict) -> str:
    """A leaderboard row's policy, with the checkpoint evaluated when it is not the run's final one."""
    checkpoint = row.get("checkpoint", "final")  # leaderboards written before best/ existed have none
    if checkpoint.startswith("best (step "):
        return f"{row['policy']}@best:{checkpoint.removeprefix('best (step ').rstrip(')')}"
    return row["policy"]


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
        panels, plotted = [], set()
        for title, keys in PANELS.items():  # a key is plotted once, in the first panel that lists it
            present = [k for k in keys if k not in plotted and any(k in r for r in records[0])][:3]
            if present:
                panels.append((title, present))
                plotted.update(present)
        if not panels:
            continue
        columns = min(3, len(panels))
        rows = math.ceil(len(panels) / columns)
        figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.4 * rows), squeeze=False)
        marks = stage_marks(stage_dir, records[0])
        for axis, (title, keys) in zip(axes.flat, panels, strict=False):
            for key in keys:
                for run, run_records in zip(runs, records, strict=True):
                    steps, values = series(run_records, key)
                    label = key if len(runs) == 1 else f"{key} ({Path(run).name})"
                    if steps:
                        axis.plot(steps, values, marker="." if len(steps) < 40 else None, label=label)
            for step, label, style in marks:
                axis.axvline(step, label=label, linewidth=1, **style)
            axis.set_title(title, fontsize=9)
            axis.set_xlabel("step")
            axis.legend(fontsize=7)
        for axis in list(axes.flat)[len(panels) :]:
            axis.set_visible(False)
        flagged = [label for _, label, style in marks if style is DIVERGENCE_STYLE]
        figure.suptitle(f"{stage}" + (f": {', '.join(flagged)}" if flagged else ""), fontsize=11)
        height = 3.4 * rows  # margins in inches (tight_layout would cost a second full draw of every figure)
        figure.subplots_adjust(
            left=0.06, right=0.98, bottom=0.5 / height, top=1 - 0.65 / height, wspace=0.25, hspace=0.45
        )
        path = out_dir / f"{stage}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written
