"""Online RL on a family of tasks: for each task of ``scripts/task_family.py``, the test pipeline's SFT stage on
the task's conversations, then its GRPO, RLOO and PPO stages on the task's prompts, each measured against the
SFT model on the task's 400 held-out prompts (greedy accuracy, the eval stage's settings; improvement with a
paired-bootstrap 95% interval over prompts).

Settings are chosen on the tuning tasks (``task_family.TUNING``) and reported on the others (``HELD_OUT``):
``--set`` changes a stage's keys (``grpo.max_steps=24``, ``rl.beta=0.05`` for every online stage), so a variant
runs as the preset would with that change. An SFT model made by an earlier run into ``--output`` is reused.

    .venv/bin/python scripts/rl_family.py [--tasks held-out|tuning|all|shop,ages] [--stages grpo,rloo,ppo]
        [--set KEY=VALUE ...] [--output DIR] [--write]
"""

import argparse
import copy
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_doc import write_section  # noqa: E402
from task_family import HELD_OUT, TASKS, TUNING, write_task  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "configs" / "pipelines" / "test.yaml"
ONLINE = ("grpo", "rloo", "ppo")


def task_names(choice: str) -> list[str]:
    named = {"held-out": list(HELD_OUT), "tuning": list(TUNING), "all": list(TASKS)}
    return named.get(choice) or choice.split(",")


def changed(stages: dict, sets: list[str], online: list[str]) -> dict:
    """The pipeline's stages with each ``KEY=VALUE`` of ``sets`` applied: ``stage.key`` for one stage (nested
    keys with dots), a bare ``key`` for each stage of ``online``."""
    stages = copy.deepcopy(stages)
    for item in sets:
        key, _, value = item.partition("=")
        parts = key.split(".")
        targets = [parts.pop(0)] if parts[0] in stages else list(online)
        for stage in targets:
            section = stages[stage]
            for part in parts[:-1]:
                section = section.setdefault(part, {})
            section[parts[-1]] = yaml.safe_load(value)
    return stages


def logged_curve(output_dir: Path, keys: tuple[str, ...]) -> tuple[float, float] | None:
    """The first and last logged training value of the first of ``keys`` the run logged."""
    records = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    for key in keys:
        values = [r[key] for r in records if key in r and "train_runtime" not in r]
        if values:
            return values[0], values[-1]
    return None


def run_task(task: str, work: Path, pipeline_file: dict, stages: list[str], sets: list[str]) -> list[dict]:
    """SFT then each online stage on ``task``; each stage's held-out figures against SFT."""
    from llmrl.evaluation import Comparison, EvalSettings, evaluate_all
    from llmrl.pipeline import pipeline_from_dict, stage_config
    from llmrl.runner import run_training

    data = write_task(task, work / "data")
    spec = copy.deepcopy(pipeline_file)
    spec["stages"] = changed(spec["stages"], sets, stages)
    spec["stages"]["sft"]["dataset"] = str(data / "sft")
    for stage in (*ONLINE, "eval"):
        spec["stages"][stage]["dataset"] = str(data / "prompts")
    pipeline = pipeline_from_dict(spec, PIPELINE)
    sft_dir = work / task  # the SFT model depends on the task only: reused by every variant
    if not (sft_dir / "sft" / "final").is_dir():
        run_training(stage_config(pipeline, "sft", sft_dir))
    variant = work / task / ("variant-" + hashlib.sha1("\n".join(sets).encode()).hexdigest()[:8])
    comparisons, seconds = [], {}
    for stage in stages:
        cfg = stage_config(pipeline, stage, sft_dir)
        cfg.output_dir, cfg.run_name = str(variant / stage), f"rl-family-{task}-{stage}"
        begun = time.time()
        if not (variant / stage / "final").is_dir():
            run_training(cfg)
        seconds[stage] = time.time() - begun
        comparisons.append(
            Comparison(stage, str(variant / stage / "final"), str(sft_dir / "sft" / "final"), variant / stage / "eval")
        )
    section = pipeline.stages["eval"]
    cfg = stage_config(pipeline, "eval", sft_dir)
    cfg.model, cfg.split = comparisons[0].model, "test"
    settings = EvalSettings(
        judge=section["judge"],
        num_prompts=section["num_prompts"],
        max_new_tokens=section["max_new_tokens"],
        batch_size=section["batch_size"],
        overwrite=True,
    )
    results = evaluate_all(cfg, settings, comparisons)
    rows = []
    for stage, result in zip(stages, results, strict=True):
        output = variant / stage
        rows.append(
            {
                "task": task,
                "stage": stage,
                "sft": result["reference_reward"]["mean"],
                "accuracy": result["model_reward"]["mean"],
                "gain": result["reward_improvement"]["mean"],
                "ci95": result["reward_improvement"]["ci95"],
                "seconds": seconds[stage],
                "reward": logged_curve(output, ("reward", "score")),
                "kl": logged_curve(output, ("kl",)),
            }
        )
    return rows


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| task | stage | SFT accuracy | accuracy | improvement over SFT [95%] | training reward | KL at the end "
        "| train (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        low, high = r["ci95"]
        reward = "{:.2f} -> {:.2f}".format(*r["reward"]) if r["reward"] else ""
        kl = f"{r['kl'][1]:.3f}" if r["kl"] else ""
        lines.append(
            f"| {r['task']} | {r['stage']} | {r['sft']:.3f} | {r['accuracy']:.3f} | {r['gain']:+.3f} "
            f"[{low:+.3f}, {high:+.3f}]{'' if low > 0 else ' (within noise)'} | {reward} | {kl} | {r['seconds']:.0f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="held-out", help="held-out, tuning, all, or comma-separated names")
    parser.add_argument("--stages", default=",".join(ONLINE))
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE, as described above")
    parser.add_argument("--output", type=Path, help="folder for data and runs (default: a temporary one)")
    parser.add_argument("--write", action="store_true", help="write the table to docs/benchmarks.md (rl_family)")
    args = parser.parse_args()

    started = time.time()
    work = args.output or Path(tempfile.mkdtemp(prefix="rl-family-"))
    pipeline_file = yaml.safe_load(PIPELINE.read_text())
    stages = args.stages.split(",")
    rows = []
    for task in task_names(args.tasks):
        rows += run_task(task, work, pipeline_file, stages, args.sets)
        print("\n".join(table(rows)), flush=True)
    (work / "rl_family.json").write_text(json.dumps(rows, indent=1))
    minutes = (time.time() - started) / 60
    held = all(r["ci95"][0] > 0 for r in rows)
    lines = [
        "## Online RL on tasks it was not tuned on",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `scripts/rl_family.py --tasks {args.tasks}"
        + "".join(f" --set {s}" for s in args.sets)
        + f"` on {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU, "
        f"{minutes:.0f} minutes in all. Each task (`scripts/task_family.py`: its own question kinds and wordings, "
        "numeric answers) gets the test pipeline's SFT stage on its 600 conversations, then the pipeline's "
        "online-RL stages as they are in `configs/pipelines/test.yaml` on its 800 training prompts; every model "
        "answers the task's 400 held-out prompts greedily (at most 32 tokens). Improvement: accuracy minus SFT's, "
        "with a paired-bootstrap 95% interval over prompts.",
        "",
        *table(rows),
    ]
    print("\n".join(lines))
    if args.write:
        write_section("rl_family", lines)
    sys.exit(0 if held else 1)


if __name__ == "__main__":
    main()
