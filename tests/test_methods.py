"""One conformance test for every method in ``llmrl.methods.METHODS`` (issue 18): a method is covered the
moment it is listed. Each trains two steps on the built-in tiny model, writes a final/ model that loads,
resumes from its checkpoint to a third step, and refuses an unknown option of its own section."""

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
        sets += ["rewards=[length]", "rl.max_completion_length=8", "rl.num_generations=2"]
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
