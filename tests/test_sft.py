"""SFT end to end on the built-in tiny model: masking of the labels, learning, and the outputs of a run."""

import json
import os

import torch
from helpers import tiny_train_args
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from llmrl.cli import app
from llmrl.config import load_config
from llmrl.methods.sft import build_trainer
from llmrl.runner import run_training

runner = CliRunner()


def supervised_text(trainer, index: int, other: int | None = None) -> tuple[str, str, dict]:
    """(whole text, text of the tokens with a label, the batch) for one example collated with another
    (alone when batches are padding-free: the row would hold both)."""
    other = index + 1 if other is None else other
    rows = [trainer.train_dataset[index]] + ([] if trainer.padding_free else [trainer.train_dataset[other]])
    batch = trainer.data_collator(rows)
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    tokenizer = trainer.processing_class
    return tokenizer.decode(ids), tokenizer.decode(ids[labels != -100]), batch


def test_chat_data_is_supervised_on_assistant_turns_only(tmp_path, chat_jsonl):
    with chat_jsonl.open("a") as f:  # a much longer last row, so that the batch below pads row 0
        f.write(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": "Add " + "1 + " * 30 + "1."},
                        {"role": "assistant", "content": "31"},
                    ]
                }
            )
            + "\n"
        )
    sets = [f"dataset={chat_jsonl}", "model=builtin:tiny", f"output_dir={tmp_path / 'out'}", "padding_free=false"]
    trainer = build_trainer(load_config(sets=sets))
    whole, supervised, batch = supervised_text(trainer, 0, other=len(trainer.train_dataset) - 1)
    assert whole.startswith("<|im_start|>user\nWhat is 0 + 0?<|im_end|>")
    assert supervised == "0 + 0 = 0\n#### 0<|im_end|>"  # the answer and its end-of-turn token, nothing else
    # padding is never supervised: every padded position of the batch carries -100
    pad_positions = batch["attention_mask"] == 0
    assert pad_positions.any()
    assert (batch["labels"][pad_positions] == -100).all()


def test_system_and_multi_turn_prompts_are_masked(tmp_path):
    rows = [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is 1 + 1?"},
                {"role": "assistant", "content": "2"},
                {"role": "user", "content": "And 2 + 2?"},
                {"role": "assistant", "content": "4"},
            ]
        }
    ] * 2
    path = tmp_path / "multi.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(sets=[f"dataset={path}", "model=builtin:tiny", f"output_dir={tmp_path / 'out'}"])
    _, supervised, _ = supervised_text(build_trainer(cfg), 0)
    assert supervised == "2<|im_end|>4<|im_end|>"


def test_prompt_completion_data_is_supervised_on_the_completion_only(tmp_path):
    rows = [{"prompt": f"Q: {i} + 1 =", "completion": f" {i + 1}"} for i in range(4)]
    path = tmp_path / "pc.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(sets=[f"dataset={path}", "model=builtin:tiny", f"output_dir={tmp_path / 'out'}"])
    _, supervised, _ = supervised_text(build_trainer(cfg), 0)
    # string pairs are rendered with the chat template; the loss covers the answer and the turn's closing text
    assert supervised == " 1<|im_end|>\n"


def test_sft_run_learns_and_writes_every_output(tmp_path, chat_jsonl, tiny_model_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "train",
            "--method",
            "sft",
            "--model",
            "builtin:tiny",
            "--dataset",
            str(chat_jsonl),
            "--output-dir",
            str(out),
            "--max-steps",
            "5",
            "--set",
            "learning_rate=1e-2",
            "--set",
            "logging_steps=1",
        ],
    )
    assert result.exit_code == 0, result.output

    # final/ holds a model and tokenizer that load with from_pretrained, and the weights changed
    final = out / "final"
    assert (final / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(final)
    AutoTokenizer.from_pretrained(final)
    before = load_file(tiny_model_path / "model.safetensors")
    after = load_file(final / "model.safetensors")
    assert before.keys() == after.keys()
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert unchanged == [], f"parameters that did not train: {unchanged}"
    assert sum(p.numel() for p in model.parameters()) > 0

    # metrics.jsonl: one record per logging step with the loss, then the summary with train_runtime
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 5 and all(r["step"] >= 1 for r in records)
    assert losses[-1] < losses[0]
    assert "train_runtime" in records[-1]

    # run_info.json: what ran, on what, with which versions
    info = json.loads((out / "run_info.json").read_text())
    assert info["method"] == "sft" and info["status"] == "completed" and info["world_size"] == 1
    assert info["config"]["learning_rate"] == 1e-2 and info["config"]["max_steps"] == 5
    assert info["versions"]["trl"] and info["versions"]["torch"]
    assert info["start_time"] <= info["end_time"]
    assert "cpu_count" in info["hardware"]

    # the run log has the start line and the metrics
    log = (out / "train.log").read_text()
    assert "training sft" in log and "step 5" in log


def test_finished_run_is_not_overwritten_without_flag(tmp_path, chat_jsonl):
    out = tmp_path / "out"
    args = tiny_train_args(
        str(chat_jsonl),
        str(out),
        "--max-steps",
        "1",
    )
    assert runner.invoke(app, args).exit_code == 0
    weights = (out / "final" / "model.safetensors").read_bytes()

    refused = runner.invoke(app, [*args, "--set", "learning_rate=0.5"])
    assert refused.exit_code == 2
    assert "already holds a finished run" in refused.output
    assert (out / "final" / "model.safetensors").read_bytes() == weights

    # --overwrite with a mistake found before training: the finished run stays as it was
    failed = runner.invoke(app, [*args, "--overwrite", "--set", "max_length=2"])
    assert failed.exit_code == 2, failed.output
    assert (out / "final" / "model.safetensors").read_bytes() == weights
    assert (out / "checkpoint-1").is_dir() and json.loads((out / "run_info.json").read_text())["status"] == "completed"

    replaced = runner.invoke(app, [*args, "--set", "learning_rate=0.5", "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert (out / "final" / "model.safetensors").read_bytes() != weights
    assert not list(out.glob(".replaced-*"))  # the replaced run is gone once the new one has trained


def test_resume_continues_from_the_last_checkpoint(tmp_path, chat_jsonl):
    import shutil

    out = tmp_path / "out"
    base = ["model=builtin:tiny", f"dataset={chat_jsonl}", f"output_dir={out}", "save_steps=2", "logging_steps=1"]
    run_training(load_config(sets=[*base, "max_steps=3"]))
    # as if the run had died after logging step 3, its last complete checkpoint being checkpoint-2
    shutil.rmtree(out / "checkpoint-3")
    shutil.rmtree(out / "final")
    run_training(load_config(sets=[*base, "max_steps=4"], flags={"resume": True}))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]  # step 3 is logged once, by the resumed run
    assert (out / "final" / "model.safetensors").is_file()


def test_lora_trains_only_the_adapter_and_saves_it_in_peft_format(tmp_path, chat_jsonl, tiny_model_path):
    from peft import PeftModel

    sets = [
        "model=builtin:tiny",
        f"dataset={chat_jsonl}",
        f"output_dir={tmp_path / 'out'}",
        "max_steps=3",
        "learning_rate=1e-2",
        "lora.enabled=true",
        "lora.r=4",
    ]
    trainable = [n for n, p in build_trainer(load_config(sets=sets)).model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)

    final = run_training(load_config(sets=sets))
    assert (final / "adapter_config.json").is_file() and (final / "adapter_model.safetensors").is_file()
    assert not (final / "model.safetensors").exists()  # the base weights are not copied

    adapter = load_file(final / "adapter_model.safetensors")
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)  # lora_B starts at zero: nonzero means it trained
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_path), final)
    original = load_file(tiny_model_path / "model.safetensors")
    merged = model.merge_and_unload().state_dict()
    assert torch.equal(merged["model.embed_tokens.weight"], original["model.embed_tokens.weight"])
    assert not torch.equal(
        merged["model.layers.0.self_attn.q_proj.weight"], original["model.layers.0.self_attn.q_proj.weight"]
    )


def test_template_without_generation_markers_trains_on_the_last_turn_only(tmp_path, tiny_model_path, caplog):
    import shutil

    model_dir = tmp_path / "no-markers"
    shutil.copytree(tiny_model_path, model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = tokenizer.chat_template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    tokenizer.save_pretrained(model_dir)
    rows = [
        {
            "messages": [
                {"role": "user", "content": "1+1?"},
                {"role": "assistant", "content": "2"},
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"},
            ]
        }
    ] * 2
    path = tmp_path / "multi.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(sets=[f"dataset={path}", f"model={model_dir}", f"output_dir={tmp_path / 'out'}"])
    with caplog.at_level("WARNING", logger="llmrl"):
        trainer = build_trainer(cfg)
    assert "training on the last assistant turn of each conversation only" in caplog.text
    whole, supervised, _ = supervised_text(trainer, 0)
    assert "1+1?" in whole and supervised == "4<|im_end|>\n"


def test_tokenization_is_cached_between_runs(tmp_path, chat_jsonl):
    """A second run on the same data and tokenizer reads the tokenized data from the cache, untouched."""
    first = build_trainer(load_config(sets=[f"dataset={chat_jsonl}", "model=builtin:tiny", "output_dir=a"]))
    files = [f["filename"] for f in first.train_dataset.cache_files]
    assert files
    written = {f: os.stat(f).st_mtime_ns for f in files}
    second = build_trainer(load_config(sets=[f"dataset={chat_jsonl}", "model=builtin:tiny", "output_dir=b"]))
    assert [f["filename"] for f in second.train_dataset.cache_files] == files
    assert {f: os.stat(f).st_mtime_ns for f in files} == written  # read, not computed again
