"""The `trl:` section (issue 18): any field of the method's TRL config, checked against that class."""

import json

import pytest
from helpers import tiny_train_args
from test_bad_input import assert_one_clear_line
from test_online_rl import train_two_steps
from typer.testing import CliRunner

from llmrl.cli import app
from llmrl.config import load_config
from llmrl.errors import LlmrlError

runner = CliRunner()


def test_a_trl_loss_type_trains_grpo_with_that_loss(tmp_path):
    from llmrl.methods.grpo import build_trainer

    out = tmp_path / "grpo"
    train_two_steps("grpo", out, "trl.loss_type=dr_grpo", "trl.scale_rewards=none")

    info = json.loads((out / "run_info.json").read_text())
    assert info["status"] == "completed" and info["config"]["trl"] == {"loss_type": "dr_grpo", "scale_rewards": "none"}
    sets = ["method=grpo", "model=builtin:tiny", "dataset=builtin:prompts", f"output_dir={tmp_path / 'b'}"]
    cfg = load_config(sets=[*sets, "rewards=[length]", "trl.loss_type=dr_grpo", "trl.scale_rewards=none"])
    trainer = build_trainer(cfg)
    assert trainer.args.loss_type == "dr_grpo" and trainer.loss_type == "dr_grpo"
    assert trainer.args.scale_rewards == "none"


def test_a_trl_optimizer_shows_in_print_config_and_run_info_and_is_used(tmp_path, chat_jsonl):
    from transformers.optimization import Adafactor

    from llmrl.methods.sft import build_trainer

    shown = runner.invoke(
        app, [*tiny_train_args(chat_jsonl, tmp_path / "x"), "--set", "trl.optim=adafactor", "--print-config"]
    )
    assert shown.exit_code == 0 and "trl:\n  optim: adafactor" in shown.output
    out = tmp_path / "sft"
    result = runner.invoke(app, [*tiny_train_args(chat_jsonl, out, "--max-steps", "2"), "--set", "trl.optim=adafactor"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run_info.json").read_text())["config"]["trl"] == {"optim": "adafactor"}
    cfg = load_config(
        sets=["model=builtin:tiny", f"dataset={chat_jsonl}", f"output_dir={tmp_path / 'b'}", "trl.optim=adafactor"]
    )
    trainer = build_trainer(cfg)
    trainer.create_optimizer()
    assert isinstance(trainer.optimizer, Adafactor)


@pytest.mark.parametrize(
    "setting, words",
    [
        (
            "trl.optimm=adafactor",
            ["unknown key trl.optimm", "SFTConfig has no field 'optimm'", "did you mean 'trl.optim'"],
        ),
        ("trl.seed=3", ["trl.seed is set by llmrl from seed"]),
        ("trl.bf16=true", ["trl.bf16 is set by llmrl from precision"]),
        ("trl.warmup_steps=3", ["trl.warmup_steps is set by llmrl from warmup_ratio"]),
    ],
)
def test_bad_trl_keys_are_refused_before_anything_runs(tmp_path, chat_jsonl, setting, words):
    out = tmp_path / "run"
    result = runner.invoke(app, [*tiny_train_args(chat_jsonl, out, "--max-steps", "1"), "--set", setting])
    assert_one_clear_line(result, words)
    assert not out.exists()


def test_a_trl_key_that_a_method_sets_names_the_method_option(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Q{i}", "chosen": "a", "rejected": "b"}) + "\n" for i in range(4)))
    args = [*tiny_train_args(pairs, tmp_path / "run", "--method", "dpo", "--max-steps", "1"), "--set", "trl.beta=0.5"]
    assert_one_clear_line(runner.invoke(app, args), ["trl.beta is set by llmrl from dpo.beta"])


def test_ppo_has_no_trl_config():
    with pytest.raises(LlmrlError, match="--method ppo is llmrl's own trainer, not TRL's; its options are ppo"):
        load_config(sets=["method=ppo", "trl.optim=adafactor"])
