"""Learning on the built-in base model: the test pipeline's SFT beats builtin:small, and its GRPO beats SFT, on
held-out prompts, with the whole 95% interval of each improvement above 0 (paired bootstrap over prompts); no
reward hacking is flagged there, and it is flagged (and stops the run) when GRPO optimises a length reward
against held-out accuracy.

The stages are the ones ``./run_all.sh --test`` runs (configs/pipelines/test.yaml), seeded, through the
pipeline's own eval stage: what a user sees in the leaderboard is what is asserted here.
"""

import json
from pathlib import Path

import pytest

from llmrl.pipeline import load_pipeline, run_pipeline

TEST_PIPELINE = Path(__file__).resolve().parent.parent / "configs" / "pipelines" / "test.yaml"


@pytest.fixture(scope="module")
def test_run(tmp_path_factory) -> Path:
    """The test pipeline's SFT, GRPO and eval stages, run once for this module."""
    return run_pipeline(load_pipeline(TEST_PIPELINE, stages=["sft", "grpo", "eval"]), tmp_path_factory.mktemp("run"))


def records_of(stage_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sft_beats_the_base_model_and_grpo_beats_sft_on_held_out_prompts(test_run):
    run = test_run

    board = {row["policy"]: row for row in json.loads((run / "eval" / "leaderboard.json").read_text())}
    assert board["sft"]["reference"] == "builtin:small"
    assert board["grpo"]["reference"] == str(run / "sft" / "final")
    for policy in ("sft", "grpo"):
        improvement = board[policy]["reward_improvement"]
        assert improvement["ci95"][0] > 0, (policy, improvement)
    assert board["grpo"]["reference_reward"]["mean"] > board["sft"]["reference_reward"]["mean"]  # SFT over base

    records = records_of(run / "grpo")
    held_out = [(r["step"], r["eval_accuracy"]) for r in records if "eval_accuracy" in r]
    assert held_out[0][0] == 0 and held_out[-1][1] > held_out[0][1]  # GRPO's own held-out metric rose too
    assert held_out[0][1] == pytest.approx(board["grpo"]["reference_reward"]["mean"])  # the eval stage's SFT figure
    assert not [k for r in records for k in r if k.startswith("divergence/")]  # no reward hacking flagged
    best = json.loads((run / "grpo" / "best" / "selection.json").read_text())
    assert best["held_out_score"] == pytest.approx(max(accuracy for _, accuracy in held_out))
    assert board["grpo"]["checkpoint"] == "final"  # the test pipeline hands final/ on (rl.hand_on: final)


@pytest.mark.slow
def test_a_length_reward_against_held_out_accuracy_is_flagged_as_reward_hacking(test_run, tmp_path):
    """GRPO from the SFT model, rewarded for long answers (the length reward peaks at the 32-token limit) and
    held out on accuracy: the answers grow past the final '#### N' line, accuracy falls, the flag fires and
    rl.stop_on_divergence stops the run."""
    from llmrl.config import load_config
    from llmrl.errors import LlmrlError
    from llmrl.runner import run_training

    out = tmp_path / "hack"
    cfg = load_config(sets=[
        f"model={test_run / 'sft' / 'final'}", "method=grpo", "dataset=builtin:prompts", f"output_dir={out}",
        "rewards=[length]", "reward_fns.length_target=32", "eval_rewards=[accuracy]", "eval_split=test",
        "eval_steps=3", "max_steps=30", "learning_rate=3e-4", "per_device_train_batch_size=32",
        "per_device_eval_batch_size=200", "logging_steps=1", "report_to=[none]",
        "rl.num_generations=8", "rl.max_completion_length=32", "rl.temperature=1.0", "rl.beta=0.0",
        "rl.stop_on_divergence=true",
    ])  # fmt: skip
    with pytest.raises(LlmrlError, match="stopped by rl.stop_on_divergence at step") as stopped:
        run_training(cfg)
    records = records_of(out)
    flagged = {k.removeprefix("divergence/"): r["step"] for r in records for k in r if k.startswith("divergence/")}
    assert flagged and set(flagged) <= {"held_out", "length"}, flagged
    evals = [(r["step"], r["eval_accuracy"]) for r in records if "eval_accuracy" in r]
    assert evals[-1][1] < evals[0][1]  # held-out accuracy fell
    assert max(r["step"] for r in records) < 30  # stopped before max_steps
    best = json.loads((out / "best" / "selection.json").read_text())["step"]
    assert best < min(flagged.values()) and f"best/ holds the best held-out policy (step {best})" in str(stopped.value)
    assert (out / "final" / "model.safetensors").is_file()
