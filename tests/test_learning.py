"""Learning on the built-in base model: the test pipeline's SFT beats builtin:small, and its GRPO beats SFT, on
held-out prompts, with the whole 95% interval of each improvement above 0 (paired bootstrap over prompts).

The stages are the ones ``./run_all.sh --test`` runs (configs/pipelines/test.yaml), seeded, through the
pipeline's own eval stage: what a user sees in the leaderboard is what is asserted here.
"""

import json
from pathlib import Path

import pytest

from llmrl.pipeline import load_pipeline, run_pipeline

TEST_PIPELINE = Path(__file__).resolve().parent.parent / "configs" / "pipelines" / "test.yaml"


@pytest.mark.slow
def test_sft_beats_the_base_model_and_grpo_beats_sft_on_held_out_prompts(tmp_path):
    run = run_pipeline(load_pipeline(TEST_PIPELINE, stages=["sft", "grpo", "eval"]), tmp_path / "run")

    board = {row["policy"]: row for row in json.loads((run / "eval" / "leaderboard.json").read_text())}
    assert board["sft"]["reference"] == "builtin:small"
    assert board["grpo"]["reference"] == str(run / "sft" / "final")
    for policy in ("sft", "grpo"):
        improvement = board[policy]["reward_improvement"]
        assert improvement["ci95"][0] > 0, (policy, improvement)
    assert board["grpo"]["reference_reward"]["mean"] > board["sft"]["reference_reward"]["mean"]  # SFT over base

    records = [json.loads(line) for line in (run / "grpo" / "metrics.jsonl").read_text().splitlines()]
    held_out = [(r["step"], r["eval_accuracy"]) for r in records if "eval_accuracy" in r]
    assert held_out[0][0] == 0 and held_out[-1][1] > held_out[0][1]  # GRPO's own held-out metric rose too
    assert held_out[0][1] == pytest.approx(board["grpo"]["reference_reward"]["mean"])  # the eval stage's SFT figure
