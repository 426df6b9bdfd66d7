"""GRPO and RLOO on the built-in tiny model: runs end to end, logs each reward, refuses what cannot run here."""

import json

import pytest
import torch
from helpers import tiny_train_args
from typer.testing import CliRunner

from llmrl.cli import app

runner = CliRunner()


def records(output_dir):
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


def train_two_steps(method, out, *sets):
    """Two steps of ``method`` on the tiny model and the bundled prompts, rewarded by accuracy and length,
    answers of at most 8 tokens; ``sets`` are more --set items."""
    items = ["rewards=[accuracy,length]", "rl.max_completion_length=8", *sets]
    args = [*tiny_train_args("builtin:prompts", out), "--method", method, "--max-steps", "2"]
    result = runner.invoke(app, [*args, *(arg for item in items for arg in ("--set", item))])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("method", ["grpo", "rloo"])
def test_online_rl_runs_and_logs_every_reward(tmp_path, method):
    out = tmp_path / method
    train_two_steps(method, out, "reward_weights=[1.0,0.1]", "rl.missing_eos_penalty=0.5", "logging_steps=1")
    logged = [r for r in records(out) if "reward" in r]
    assert len(logged) == 2
    for record in logged:
        assert {"rewards/accuracy/mean", "rewards/length/mean", "rewards/missing_eos_penalty/mean"} <= set(record)
        # the untrained tiny model never stops within 8 tokens: every completion pays the penalty
        assert record["rewards/missing_eos_penalty/mean"] == -0.5
        expected = record["rewards/accuracy/mean"] + 0.1 * record["rewards/length/mean"] - 0.5
        assert record["reward"] == pytest.approx(expected, abs=1e-5)
    assert (out / "final" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "--method grpo needs rewards: e.g. --set rewards=[accuracy]"),
        (
            ["--set", "rewards=[accuracy]", "--set", "rl.num_generations=3"],
            "gradient_accumulation_steps (8) must be a multiple of rl.num_generations (3)",
        ),
        (["--set", "rewards=[accuracy]", "--set", "rl.use_vllm=true"], "rl.use_vllm needs a CUDA GPU"),
        (["--set", "rewards=[reward_model:./missing]"], "model folder not found: ./missing"),
    ],
)
def test_online_rl_bad_input(tmp_path, monkeypatch, extra, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "o"
    result = runner.invoke(app, [*tiny_train_args("builtin:prompts", out), "--method", "grpo", *extra])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()


def expected_completion_length(model_dir, prompts, max_new_tokens):
    """The mean length of greedy answers, computed apart from the trainer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmrl.generation import generate

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    _, token_ids = generate(model, AutoTokenizer.from_pretrained(model_dir), prompts, max_new_tokens, batch_size=4)
    return sum(map(len, token_ids)) / len(token_ids)


@pytest.mark.parametrize("method", ["grpo", "rloo"])
def test_online_rl_scores_greedy_answers_to_the_eval_split(tmp_path, method, tiny_model_path):
    from llmrl.config import load_config
    from llmrl.data import load_split

    out = tmp_path / method
    train_two_steps(method, out, "eval_split=test", "eval_steps=1", "data.max_samples=16")
    evals = [r for r in records(out) if "eval_accuracy" in r]
    assert [r["step"] for r in evals] == [0, 1, 2]  # before the first update, every eval_steps; the end only once
    for record in evals:
        assert {"eval_accuracy", "eval_length", "eval_completion_length"} <= set(record)
        assert 0 <= record["eval_accuracy"] <= 1 and 1 <= record["eval_completion_length"] <= 8
        assert not any(key.startswith("eval_rewards/") for key in record)  # TRL's sampled evaluation is replaced
    prompts = [row["prompt"] for row in load_split(load_config(sets=["dataset=builtin:prompts"]), "test")][:16]
    assert evals[0]["eval_completion_length"] == pytest.approx(expected_completion_length(tiny_model_path, prompts, 8))
    assert evals[-1]["eval_completion_length"] == pytest.approx(expected_completion_length(out / "final", prompts, 8))
    # best/: the policy at the step with the best held-out score (accuracy + length, the run's rewards, weighted
    # as in training; the earliest of equal ones), written whole with the step it was kept at
    scores = [r["eval_accuracy"] + r["eval_length"] for r in evals]
    best_step = evals[scores.index(max(scores))]["step"]
    assert json.loads((out / "best" / "selection.json").read_text())["step"] == best_step
    best_length = next(r["eval_completion_length"] for r in evals if r["step"] == best_step)
    assert expected_completion_length(out / "best", prompts, 8) == pytest.approx(best_length)
