"""Reward modeling, DPO and KTO on the built-in tiny model, LoRA on each, QLoRA's CPU error, and llmrl merge."""

import json

import pytest
import torch
from helpers import tiny_train_args
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
from typer.testing import CliRunner

from llmrl.cli import app
from llmrl.config import load_config
from llmrl.run_context import RunContext
from llmrl.runner import run_training
from llmrl.trl_loop import train_and_save

runner = CliRunner()


@pytest.fixture
def toy_pairs(tmp_path):
    """Separable preference pairs: the chosen answer always says 'good', the rejected one 'bad'."""
    rows = [
        {"prompt": f"Question {i}: which reply?", "chosen": f"good good {i}", "rejected": f"bad bad {i}"}
        for i in range(80)
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def records(output_dir):
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


def trainable_names(trainer):
    return [name for name, p in trainer.model.named_parameters() if p.requires_grad]


def test_reward_model_learns_a_separable_preference(tmp_path, toy_pairs):
    from llmrl.methods.reward import build_trainer

    out = tmp_path / "rm"
    out.mkdir()
    cfg = load_config(
        sets=[
            "model=builtin:tiny",
            f"dataset={toy_pairs}",
            f"output_dir={out}",
            "max_steps=30",
            "learning_rate=5e-3",
            "logging_steps=5",
            "data.eval_fraction=0.25",
        ]
    )
    trainer = build_trainer(cfg)
    assert len(trainer.eval_dataset) == 20  # no eval split: a held-out fraction of the training data
    before = trainer.evaluate()["eval_accuracy"]
    final = train_and_save(trainer, RunContext(cfg))

    evaluation = [r for r in records(out) if "eval_accuracy" in r][-1]
    assert evaluation["eval_accuracy"] >= 0.9 > before + 0.2
    assert evaluation["eval_margin"] > 0

    model = AutoModelForSequenceClassification.from_pretrained(final)  # usable later as reward_model:PATH
    tokenizer = AutoTokenizer.from_pretrained(final)
    assert model.config.num_labels == 1

    def score(answer):
        messages = [{"role": "user", "content": "Question 99: which reply?"}, {"role": "assistant", "content": answer}]
        ids = tokenizer.apply_chat_template(messages, return_tensors="pt", return_dict=True)
        return model(**ids).logits[0, 0].item()

    assert score("good good 99") > score("bad bad 99")


def test_reward_eval_defaults_to_a_tenth_held_out(tmp_path, toy_pairs):
    from llmrl.methods.reward import build_trainer

    cfg = load_config(sets=["model=builtin:tiny", f"dataset={toy_pairs}", f"output_dir={tmp_path / 'o'}"])
    trainer = build_trainer(cfg)
    assert (len(trainer.train_dataset), len(trainer.eval_dataset)) == (72, 8)


def test_dpo_raises_margins_and_changes_parameters(tmp_path, toy_pairs, tiny_model_path):
    out = tmp_path / "dpo"
    final = run_training(
        load_config(
            sets=[
                "method=dpo",
                "model=builtin:tiny",
                f"dataset={toy_pairs}",
                f"output_dir={out}",
                "max_steps=12",
                "learning_rate=5e-3",
                "logging_steps=1",
                "per_device_train_batch_size=8",
                "dpo.beta=0.5",
            ]
        )
    )
    logged = [r for r in records(out) if "rewards/margins" in r]
    assert {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"} <= set(logged[0])
    assert logged[0]["rewards/margins"] == pytest.approx(0, abs=1e-4)  # step 1: the policy is the reference
    assert min(r["rewards/margins"] for r in logged[-3:]) > 0.1
    assert logged[-1]["rewards/accuracies"] > 0.8

    before, after = load_file(tiny_model_path / "model.safetensors"), load_file(final / "model.safetensors")
    assert all(not torch.equal(before[name], after[name]) for name in before)


@pytest.mark.parametrize("unpaired", [False, True])
def test_kto_runs_on_paired_and_unpaired_data(tmp_path, unpaired):
    path = tmp_path / "kto.jsonl"
    if unpaired:
        rows = [
            {"prompt": f"Q{i}?", "completion": f"good {i}" if i % 2 else f"bad {i}", "label": bool(i % 2)}
            for i in range(32)
        ]
    else:
        rows = [{"prompt": f"Q{i}?", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(16)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "kto"
    result = runner.invoke(
        app,
        [
            *tiny_train_args(path, out),
            "--method",
            "kto",
            "--max-steps",
            "3",
            "--set",
            "logging_steps=1",
            "--set",
            "per_device_train_batch_size=4",
        ],
    )
    assert result.exit_code == 0, result.output
    losses = [r["loss"] for r in records(out) if "loss" in r]
    assert len(losses) == 3 and all(loss == loss for loss in losses)  # logged and finite
    AutoModelForCausalLM.from_pretrained(out / "final")


@pytest.mark.parametrize("method", ["reward", "dpo", "kto"])
def test_lora_trains_only_adapter_weights(tmp_path, toy_pairs, method):
    import importlib

    build_trainer = importlib.import_module(f"llmrl.methods.{method}").build_trainer
    cfg = load_config(
        sets=[
            f"method={method}",
            "model=builtin:tiny",
            f"dataset={toy_pairs}",
            f"output_dir={tmp_path / 'o'}",
            "lora.enabled=true",
            "lora.r=4",
        ]
    )
    names = trainable_names(build_trainer(cfg))
    assert names
    for name in names:
        # a reward model also trains its new score head (peft's modules_to_save): it has no pretrained weights
        assert "lora_" in name or (method == "reward" and "score" in name), name


def test_lora_reward_model_saves_an_adapter_that_merges(tmp_path, toy_pairs, tiny_model_path):
    out = tmp_path / "rm"
    final = run_training(
        load_config(
            sets=[
                "method=reward",
                "model=builtin:tiny",
                f"dataset={toy_pairs}",
                f"output_dir={out}",
                "max_steps=3",
                "learning_rate=1e-2",
                "lora.enabled=true",
                "lora.r=4",
            ]
        )
    )
    assert (final / "adapter_config.json").is_file()
    merged_dir = tmp_path / "merged"
    result = runner.invoke(app, ["merge", "--adapter", str(final), "--output", str(merged_dir)])
    assert result.exit_code == 0, result.output

    from peft import PeftModel

    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_path, num_labels=1)
    base.config.pad_token_id = AutoTokenizer.from_pretrained(tiny_model_path).pad_token_id
    with_adapter = PeftModel.from_pretrained(base, final).eval()
    merged = AutoModelForSequenceClassification.from_pretrained(merged_dir).eval()
    ids = torch.tensor([[5, 17, 42, 99, 3, 7]])
    torch.testing.assert_close(merged(ids).logits, with_adapter(ids).logits, rtol=1e-5, atol=1e-5)


def test_merge_is_exact_for_a_causal_lm(tmp_path, chat_jsonl, tiny_model_path):
    from peft import PeftModel

    final = run_training(
        load_config(
            sets=[
                "model=builtin:tiny",
                f"dataset={chat_jsonl}",
                f"output_dir={tmp_path / 'sft'}",
                "max_steps=3",
                "learning_rate=1e-2",
                "lora.enabled=true",
                "lora.r=4",
            ]
        )
    )
    merged_dir = tmp_path / "merged"
    result = runner.invoke(
        app, ["merge", "--base", "builtin:tiny", "--adapter", str(final), "--output", str(merged_dir)]
    )
    assert result.exit_code == 0, result.output
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_path), final).eval()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    ids = torch.tensor([[5, 17, 42, 99, 3, 7, 250, 300]])
    torch.testing.assert_close(merged(ids).logits, with_adapter(ids).logits, rtol=1e-5, atol=1e-5)
    base_logits = AutoModelForCausalLM.from_pretrained(tiny_model_path)(ids).logits
    assert not torch.allclose(merged(ids).logits, base_logits)  # the adapter did change the model
    assert AutoTokenizer.from_pretrained(merged_dir).chat_template


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda t: ["--adapter", str(t), "--output", str(t / "m")], "is not a LoRA adapter folder"),
        (lambda t: ["--adapter", str(t / "a"), "--output", str(t / "full")], "already exists and is not an empty"),
    ],
)
def test_merge_bad_input(tmp_path, make_args, message):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "adapter_config.json").write_text("{}")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    result = runner.invoke(app, ["merge", *make_args(tmp_path)])
    assert result.exit_code == 2 and message in result.output
    assert (tmp_path / "full" / "x").read_text() == "keep"


def test_qlora_on_cpu_is_a_clear_error_before_anything_is_written(tmp_path, toy_pairs, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    out = tmp_path / "q"
    result = runner.invoke(
        app,
        [
            *tiny_train_args(toy_pairs, out),
            "--method",
            "dpo",
            "--set",
            "lora.enabled=true",
            "--set",
            "lora.quantize=4bit",
        ],
    )
    assert result.exit_code == 2
    assert "error: lora.quantize=4bit (QLoRA) needs a CUDA GPU, and this machine has cpu only" in result.output
    assert not out.exists()


@pytest.mark.parametrize("method", ["dpo", "reward"])
def test_pairs_are_batched_by_length_with_less_padding(method):
    """Preference batches are padded to their longest pair; grouping pairs of similar length pads less than
    half as much, and an epoch still draws every pair once."""
    import importlib

    module = importlib.import_module(f"llmrl.methods.{method}")
    padding, drawn = {}, {}
    for grouped in (True, False):
        sets = [f"method={method}", "model=builtin:tiny", "dataset=builtin:preference", "output_dir=out"]
        trainer = module.build_trainer(load_config(sets=[*sets, f"group_by_length={grouped}"]))
        batches = list(trainer.get_train_dataloader())
        masks = [b["attention_mask"] for b in batches]
        padding[grouped] = 1 - sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)
        drawn[grouped] = sum(m.shape[0] for m in masks)
    assert padding[True] < padding[False] / 2, padding
    assert drawn[True] == drawn[False] == 2 * len(trainer.train_dataset)  # chosen and rejected of every pair
