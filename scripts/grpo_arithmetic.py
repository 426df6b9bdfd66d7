"""Show that GRPO learns: SFT the built-in small model on the bundled arithmetic, then GRPO it with the
``accuracy`` reward, and compare the mean reward of the first and the last GRPO steps.

Also measures greedy accuracy on the held-out test prompts before and after GRPO. Writes the figures, with the
machine and the settings, to docs/benchmarks.md (section "GRPO learns arithmetic").

    .venv/bin/python scripts/grpo_arithmetic.py [--sft-epochs 8] [--grpo-steps 60] [--no-write]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks_doc import write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent


def greedy_accuracy(model_dir: Path, max_new_tokens: int = 24) -> float:
    """Share of the bundled test prompts whose greedy completion has the right final answer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmrl.config import load_config
    from llmrl.data import load_split
    from llmrl.rewards import answers_match

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    rows = load_split(load_config(sets=["dataset=builtin:prompts"]), "test").to_list()
    correct = 0
    for start in range(0, len(rows), 25):
        batch = rows[start : start + 25]
        texts = [tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in batch]
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        for row, ids in zip(batch, output[:, inputs["input_ids"].shape[1] :], strict=True):
            correct += answers_match(tokenizer.decode(ids, skip_special_tokens=True), row["answer"])
    return correct / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft-epochs", type=float, default=8)
    parser.add_argument("--grpo-steps", type=int, default=60)
    parser.add_argument("--grpo-lr", type=float, default=1e-4)
    parser.add_argument("--prompts", type=int, default=64, help="training prompts used (revisited every few steps)")
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--prompts-per-step", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--window", type=int, default=10, help="steps averaged at the start and at the end")
    parser.add_argument("--output", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from llmrl.config import load_config
    from llmrl.runner import run_training

    root = args.output or Path(tempfile.mkdtemp(prefix="grpo-arithmetic-"))
    started = time.time()
    sft = run_training(
        load_config(
            ROOT / "configs" / "sft_test.yaml",
            sets=[
                f"num_train_epochs={args.sft_epochs}",
                f"output_dir={root / 'sft'}",
                "eval_split=null",
                "save_steps=100000",
            ],
        )
    )
    sft_accuracy = greedy_accuracy(sft)
    batch = args.num_generations * args.prompts_per_step
    grpo = run_training(
        load_config(
            sets=[
                "method=grpo",
                f"model={sft}",
                "dataset=builtin:prompts",
                f"output_dir={root / 'grpo'}",
                f"max_steps={args.grpo_steps}",
                f"learning_rate={args.grpo_lr}",
                "rewards=[accuracy]",
                f"rl.num_generations={args.num_generations}",
                f"per_device_train_batch_size={batch}",
                f"rl.temperature={args.temperature}",
                "rl.max_completion_length=16",
                "logging_steps=1",
                "save_steps=100000",
                f"data.max_samples={args.prompts}",
            ]
        )
    )
    grpo_accuracy = greedy_accuracy(grpo)
    records = [json.loads(line) for line in (root / "grpo" / "metrics.jsonl").read_text().splitlines()]
    rewards = [r["rewards/accuracy/mean"] for r in records if "rewards/accuracy/mean" in r]
    first, last = statistics.mean(rewards[: args.window]), statistics.mean(rewards[-args.window :])
    minutes = (time.time() - started) / 60

    lines = [
        "## GRPO learns arithmetic",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `scripts/grpo_arithmetic.py` on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), no GPU, {minutes:.1f} minutes in all. `builtin:small` "
        f"was SFT-trained for {args.sft_epochs:g} epochs on `builtin:sft` (`configs/sft_test.yaml`), then GRPO-trained "
        f"for {args.grpo_steps} steps on the first {args.prompts} prompts of `builtin:prompts` with "
        f"`rewards=[accuracy]` ({args.prompts_per_step} prompts x {args.num_generations} completions per step, "
        f"temperature {args.temperature}, learning rate {args.grpo_lr:g}). The accuracy reward is measured on the "
        "training prompts, as GRPO sees them; greedy accuracy on the held-out test prompts is shown beside it.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| mean accuracy reward, first {args.window} GRPO steps | {first:.3f} |",
        f"| mean accuracy reward, last {args.window} GRPO steps | {last:.3f} |",
        f"| greedy accuracy on the 100 test prompts after SFT | {sft_accuracy:.2f} |",
        f"| greedy accuracy on the 100 test prompts after GRPO | {grpo_accuracy:.2f} |",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section("grpo_arithmetic", lines)
    sys.exit(0 if last > first else 1)


if __name__ == "__main__":
    main()
