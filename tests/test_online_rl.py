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


@pytest.mark.parametrize("method", ["grpo", "rloo"])
def test_online_rl_runs_and_logs_every_reward(tmp_path, method):
    out = tmp_path / method
    result = runner.invoke(
        app,
        [
            *tiny_train_args("builtin:prompts", out),
            "--method",
            method,
            "--max-steps",
            "2",
            "--set",
            "rewards=[accuracy,length]",
            "--set",
            "reward_weights=[1.0,0.1]",
            "--set",
            "rl.max_completion_length=8",
            "--set",
            "rl.missing_eos_penalty=0.5",
            "--set",
            "logging_steps=1",
        ],
    )
    assert result.exit_code == 0, result.output
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
