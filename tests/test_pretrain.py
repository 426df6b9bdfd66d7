"""The shipped base model (builtin:small) is what llmrl's pretraining recipe makes, and can do what it says.

The whole recipe takes about half an hour on 2 CPU cores, too long for the suite: here the tokenizer is made
again in full, the first steps of the run are made again and compared with the shipped log, the shipped
weights are the ones that log ended with, and the model's skills are measured again. The full run is
``LLMRL_FULL_PRETRAIN=1 scripts/test.sh tests/test_pretrain.py`` (or ``python -m llmrl.pretrain``).
"""

import dataclasses
import json
import os

import pytest

from llmrl import pretrain

SHIPPED = pretrain.SHIPPED
REPLAYED_STEPS = 60


@pytest.fixture(scope="module")
def tokenizer():
    return pretrain.build_tokenizer()


def test_the_shipped_log_is_of_this_recipe_and_ends_with_the_shipped_weights():
    recipe, steps, sha = pretrain.read_log(SHIPPED / pretrain.LOG_NAME)
    assert recipe == dataclasses.asdict(pretrain.RECIPE)  # a changed recipe means the model must be made again
    assert steps[-1]["step"] == pretrain.RECIPE.steps
    assert sha == pretrain.file_sha256(SHIPPED / "model.safetensors")
    first, last = steps[0]["mean_loss"], steps[-1]["mean_loss"]
    assert last < first / 4  # it learned: about 7.3 (random over 1536 tokens) down to under 1


def test_the_tokenizer_is_made_again_exactly(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").read_text() == (SHIPPED / "tokenizer.json").read_text()
    ids = tokenizer("Lena has 23 marbles and wins 108 more.")["input_ids"]
    digits = [tokenizer.decode([i]) for i in ids if tokenizer.decode([i]).strip().isdigit()]
    assert digits == ["2", "3", "1", "0", "8"]  # one token per digit


def test_the_first_steps_of_the_run_are_made_again(tokenizer):
    replayed = []
    pretrain.train(tokenizer, steps=REPLAYED_STEPS, log=replayed.append)
    _, shipped, _ = pretrain.read_log(SHIPPED / pretrain.LOG_NAME)
    shipped = {record["step"]: record for record in shipped}
    assert [r["step"] for r in replayed] == [1, *range(10, REPLAYED_STEPS + 1, 10)]
    for record in replayed:  # bit for bit on the machine that made it; other CPUs round a little differently
        assert record["loss"] == pytest.approx(shipped[record["step"]]["loss"], rel=1e-3), record["step"]


@pytest.mark.slow
def test_the_shipped_model_has_the_skills_its_probe_reports():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(SHIPPED).eval()
    measured = pretrain.probe(model, AutoTokenizer.from_pretrained(SHIPPED))
    recorded = json.loads((SHIPPED / "probe.json").read_text())
    assert measured == pytest.approx(recorded, abs=0.03)
    assert recorded["mean"] > 0.5


@pytest.mark.skipif(not os.environ.get("LLMRL_FULL_PRETRAIN"), reason="about 30 min: set LLMRL_FULL_PRETRAIN=1")
def test_the_full_recipe_makes_the_shipped_weights(tmp_path):
    from safetensors.torch import load_file

    made = pretrain.make(tmp_path / "small", quiet=True)
    _, steps, sha = pretrain.read_log(made / pretrain.LOG_NAME)
    if sha != pretrain.file_sha256(SHIPPED / "model.safetensors"):  # another kind of CPU: close, not equal
        _, shipped_steps, _ = pretrain.read_log(SHIPPED / pretrain.LOG_NAME)
        assert steps[-1]["mean_loss"] == pytest.approx(shipped_steps[-1]["mean_loss"], rel=0.02)
        made_probe = json.loads((made / "probe.json").read_text())
        assert made_probe["mean"] == pytest.approx(json.loads((SHIPPED / "probe.json").read_text())["mean"], abs=0.05)
    else:
        a, b = load_file(made / "model.safetensors"), load_file(SHIPPED / "model.safetensors")
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
