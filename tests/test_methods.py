"""One conformance test for every method in ``llmrl.methods.METHODS`` (issue 18): a method is covered the
moment it is listed. Each trains two steps on the built-in tiny model, writes a final/ model that loads,
resumes from its checkpoint to a third step, and refuses an unknown option of its own section; and no setting
of llmrl's draws a deprecation warning from TRL."""

import json

import pytest
from helpers import tiny_train_args
from test_bad_input import assert_one_clear_line
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
from typer.testing import CliRunner

from llmrl.cli import app
from llmrl.methods import METHODS

runner = CliRunner()
DATA = {
    "sft": "builtin:sft",
    "preference": "builtin:preference",
    "kto": "builtin:preference",
    "prompt": "builtin:prompts",
}


def run_args(name: str, out, *extra) -> list[str]:
    method = METHODS[name]
    sets = ["save_steps=1", "logging_steps=1", "per_device_train_batch_size=4", "max_length=128"]
    if method.online:
        sets += ["rewards=[length]", "rl.max_completion_length=8"]
    if name in ("grpo", "rloo"):  # groups of 2 completions fit a batch of 4 (PPO samples one, online DPO two)
        sets += ["rl.num_generations=2"]
    if name == "distill":  # the tiny model teaches itself: what is tested is the run, not the lesson
        sets += ["distill.teacher=builtin:tiny", "distill.max_completion_length=8"]
    args = tiny_train_args(DATA[method.kind], out, "--method", name, *extra)
    return [*args, *(arg for item in sets for arg in ("--set", item))]


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_trains_saves_resumes_and_refuses_a_bad_option(tmp_path, name):
    out = tmp_path / name
    result = runner.invoke(app, run_args(name, out, "--max-steps", "2"))
    assert result.exit_code == 0, result.output
    info = json.loads((out / "run_info.json").read_text())
    assert info["method"] == name and info["status"] == "completed"
    model_class = AutoModelForCausalLM if METHODS[name].policy else AutoModelForSequenceClassification
    assert model_class.from_pretrained(out / "final") is not None
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {1, 2} <= set(steps)

    resumed = runner.invoke(app, run_args(name, out, "--max-steps", "3", "--resume"))
    assert resumed.exit_code == 0, resumed.output
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sorted(set(steps)) == [1, 2, 3] and steps.count(1) == 1  # continued at step 3, not from the start
    assert "resume: max_steps 2 -> 3" in (out / "train.log").read_text()

    section = METHODS[name].sections[0]
    bad = runner.invoke(app, [*run_args(name, tmp_path / "bad", "--max-steps", "1"), "--set", f"{section}.nope=1"])
    assert_one_clear_line(bad, [f"unknown config key '{section}.nope'"])
    assert not (tmp_path / "bad").exists()


NEW_METHODS = ["distill", "orpo", "simpo", "online_dpo"]


def test_the_new_methods_run_as_lora_pipeline_stages_after_sft(tmp_path):
    """Each new method is a pipeline stage that starts from the SFT stage's model, with LoRA (merged before it
    is handed on), and the eval stage compares each with SFT."""
    from llmrl.pipeline import pipeline_from_dict, run_pipeline

    stage = {"max_steps": 1, "lora": {"enabled": True}, "per_device_train_batch_size": 4, "max_length": 128}
    stages = {
        "sft": {"dataset": "builtin:sft", "max_steps": 1},
        "distill": {
            **stage,
            "dataset": "builtin:prompts",
            "distill": {"teacher": "builtin:tiny", "max_completion_length": 8},
        },
        "orpo": {**stage, "dataset": "builtin:preference"},
        "simpo": {**stage, "dataset": "builtin:preference"},
        "online_dpo": {
            **stage,
            "dataset": "builtin:prompts",
            "rewards": ["length"],
            "rl": {"max_completion_length": 8},
        },
        "eval": {"dataset": "builtin:prompts", "judge": "length", "num_prompts": 4, "max_new_tokens": 4},
    }
    pipeline = pipeline_from_dict({"name": "new", "defaults": {"model": "builtin:tiny"}, "stages": stages}, "new")
    run = run_pipeline(pipeline, tmp_path / "run")

    info = json.loads((run / "run_info.json").read_text())
    assert all(record["status"] == "completed" for record in info["stages"].values()), info["stages"]
    for name in NEW_METHODS:
        config = json.loads((run / name / "run_info.json").read_text())["config"]
        assert config["model"] == str(run / "sft" / "final") and config["lora"]["enabled"]
        assert (run / name / "merged" / "config.json").is_file()
    board = json.loads((run / "eval" / "leaderboard.json").read_text())
    assert {row["policy"] for row in board} == {"sft", *NEW_METHODS}


@pytest.mark.parametrize("name", NEW_METHODS)
def test_data_inspect_reads_each_new_methods_data(name):
    result = runner.invoke(app, ["data", "inspect", "--method", name, "--dataset", DATA[METHODS[name].kind]])
    assert result.exit_code == 0, result.output
    assert f"as {METHODS[name].kind} data" in result.output


@pytest.mark.parametrize("name", [name for name, method in METHODS.items() if method.trl_config])
def test_no_setting_of_llmrls_is_deprecated_in_trl(name):
    """Building the TRL trainer with llmrl's settings draws no FutureWarning (TRL 1.16 deprecates, e.g., its
    use_liger_kernel flag: llmrl applies Liger's kernels itself when it loads the model)."""
    import warnings

    from llmrl.config import load_config

    method = METHODS[name]
    sets = [f"method={name}", "model=builtin:tiny", f"dataset={DATA[method.kind]}", "data.max_samples=16"]
    if method.online:
        sets += ["rewards=[length]", "rl.max_completion_length=8", "per_device_train_batch_size=4"]
    if name in ("grpo", "rloo"):
        sets += ["rl.num_generations=2"]
    if name == "distill":
        sets += ["distill.teacher=builtin:tiny"]
    cfg = load_config(sets=[*sets, "output_dir=out"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        method.module.build_trainer(cfg)
    assert not [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
