"""What makes online RL raise (or lower) held-out accuracy: the test pipeline's GRPO, RLOO and PPO stages as
they are, then with one setting changed at a time, all from one SFT model and each measured against it.

Every variant trains from the same SFT model (the test pipeline's SFT stage, made first unless ``--sft-run``
names a pipeline run that has one) and answers the same 400 held-out prompts greedily; the table shows its
accuracy, the improvement over SFT with its paired-bootstrap 95% interval, how many questions it fixed and
broke, and the training reward and KL as the run logged them. Writes docs/benchmarks.md, section
"rl_study".

    .venv/bin/python scripts/rl_study.py [--sft-run runs/ID] [--only grpo] [--no-write]
"""

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from benchmarks_doc import write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "configs" / "pipelines" / "test.yaml"
# (stage, what is changed, the change to the stage's keys); "as in the test pipeline" first for each stage
VARIANTS = [
    ("grpo", "as in the test pipeline", {}),
    ("grpo", "no KL anchor (rl.beta 0, TRL's default)", {"rl": {"beta": 0.0}}),
    ("grpo", "sampling temperature 1.0", {"rl": {"temperature": 1.0}}),
    ("grpo", "learning rate 3e-4", {"learning_rate": 3.0e-4}),
    ("grpo", "linear decay, no warm-up (TRL's default schedule)", {"lr_scheduler_type": "linear", "warmup_ratio": 0}),
    ("rloo", "as in the test pipeline", {}),
    ("rloo", "no KL anchor (rl.beta 0)", {"rl": {"beta": 0.0}}),
    ("ppo", "as in the test pipeline", {}),
    ("ppo", "value model at the policy's learning rate", {"ppo": {"value_learning_rate": None}}),
]


def merged(section: dict, change: dict) -> dict:
    """The stage's keys with ``change`` applied (nested sections such as rl and ppo merged key by key)."""
    section = copy.deepcopy(section)
    for key, value in change.items():
        if isinstance(value, dict):
            section[key] = {**section.get(key, {}), **value}
        else:
            section[key] = value
    return section


def logged(output_dir: Path) -> dict:
    """The training reward and KL of a run's metrics.jsonl: its first and last logged values."""
    records = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    shown = {}
    for name, keys in (("reward", ("reward", "score")), ("kl", ("kl",))):
        key = next((k for k in keys if any(k in r for r in records)), None)
        values = [r[key] for r in records if key and key in r and "train_runtime" not in r]
        if values:
            shown[name] = (values[0], values[-1])
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft-run", type=Path, help="a test-pipeline run folder whose sft/final to start from")
    parser.add_argument("--only", choices=["grpo", "rloo", "ppo"], help="study one stage only")
    parser.add_argument(
        "--output",
        type=Path,
        help="folder for the runs (default: a temporary one); variants an earlier run trained there are reused",
    )
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/benchmarks.md alone")
    args = parser.parse_args()

    from llmrl.evaluation import Comparison, EvalSettings, evaluate_all
    from llmrl.pipeline import load_pipeline, stage_config
    from llmrl.runner import run_training

    started = time.time()
    pipeline = load_pipeline(PIPELINE)
    work = args.output or Path(tempfile.mkdtemp(prefix="rl-study-"))
    sft_run = args.sft_run or work
    if not (sft_run / "sft" / "final").is_dir():
        run_training(stage_config(pipeline, "sft", sft_run))
    sft = sft_run / "sft" / "final"

    variants = [v for v in VARIANTS if args.only in (None, v[0])]
    original = copy.deepcopy(pipeline.stages)
    comparisons, trained, reused = [], {}, 0
    for number, (stage, _, change) in enumerate(variants):
        pipeline.stages[stage] = merged(original[stage], change)
        cfg = stage_config(pipeline, stage, sft_run)  # starts from sft_run's SFT model
        cfg.output_dir, cfg.eval_split, cfg.run_name = str(work / f"{number}-{stage}"), None, f"rl-study-{number}"
        output = Path(cfg.output_dir)
        done = output / "study.json"  # a variant trained by an earlier run of this script into --output is reused
        reused += done.is_file()
        if not done.is_file():
            begun = time.time()
            run_training(cfg)
            done.write_text(json.dumps({"change": change, "train_seconds": time.time() - begun}))
        trained[number] = (json.loads(done.read_text())["train_seconds"], logged(output))
        comparisons.append(Comparison(str(number), str(output / "final"), str(sft), output / "eval"))
    pipeline.stages = original

    section = pipeline.stages["eval"]
    cfg = stage_config(pipeline, "eval", sft_run)
    cfg.model, cfg.split = comparisons[0].model, section.get("split", "test")
    settings = EvalSettings(
        judge=section["judge"],
        num_prompts=section["num_prompts"],
        max_new_tokens=section["max_new_tokens"],
        batch_size=section["batch_size"],
        overwrite=True,
    )
    results = evaluate_all(cfg, settings, comparisons)

    rows = []
    for (stage, change_name, _), result, comparison in zip(variants, results, comparisons, strict=True):
        samples = [json.loads(line) for line in (comparison.output_dir / "samples.jsonl").read_text().splitlines()]
        fixed = sum(s["model_score"] > s["reference_score"] for s in samples)
        broken = sum(s["model_score"] < s["reference_score"] for s in samples)
        seconds, curves = trained[int(comparison.name)]
        gain, (low, high) = result["reward_improvement"]["mean"], result["reward_improvement"]["ci95"]
        reward = "{:.2f} -> {:.2f}".format(*curves["reward"]) if "reward" in curves else ""
        kl = "{:.3f}".format(curves["kl"][1]) if "kl" in curves else ""
        rows.append(
            f"| {stage} | {change_name} | {result['model_reward']['mean']:.3f} | {gain:+.3f} [{low:+.3f}, "
            f"{high:+.3f}] | {fixed} / {broken} | {reward} | {kl} | {seconds:.0f} |"
        )
    sft_accuracy = results[0]["reference_reward"]["mean"]
    minutes = (time.time() - started) / 60
    reuse_note = f" ({reused} variants trained by an earlier run of the script and reused)" if reused else ""
    lines = [
        "## What makes online RL raise held-out accuracy",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `scripts/rl_study.py` on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), no GPU, {minutes:.1f} minutes in all{reuse_note}. "
        f"Every run starts from the test pipeline's SFT model (held-out accuracy {sft_accuracy:.3f}) and is the "
        "pipeline's stage "
        "(`configs/pipelines/test.yaml`) with one change; all answer the same "
        f"{results[0]['scored_prompts']} held-out prompts greedily. Improvement: accuracy minus SFT's, with a "
        "paired-bootstrap 95% interval over prompts; fixed / broken: questions SFT got wrong and the run right, "
        "and the other way round; reward and KL: the training batches' mean reward, first -> last logged "
        "value, and the KL to the starting model at the last.",
        "",
        "| stage | change | held-out accuracy | improvement over SFT [95%] | fixed / broken | training reward "
        "| KL at the end | train (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section("rl_study", lines)
    baseline = [r for (stage, name, _), r in zip(variants, results, strict=True) if name.startswith("as in")]
    sys.exit(0 if all(r["reward_improvement"]["ci95"][0] > 0 for r in baseline) else 1)


if __name__ == "__main__":
    main()
