"""The built-in models: deterministic, cached or shipped, offline, with a chat template that marks assistant turns;
the shipped base model is what its pretraining script makes."""

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from llmrl.builtin import PRESETS, SHIPPED, build_model, ensure_builtin, resolve_model


def test_build_is_deterministic(tmp_path):
    first, second = build_model("tiny", tmp_path / "a"), build_model("tiny", tmp_path / "b")
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (first / "tokenizer.json").read_text() == (second / "tokenizer.json").read_text()


def test_builtin_name_resolves_to_one_cached_copy(tiny_model_path):
    assert resolve_model("builtin:tiny") == str(tiny_model_path)
    stamp = (tiny_model_path / "model.safetensors").stat().st_mtime_ns
    assert ensure_builtin("tiny") == tiny_model_path
    assert (tiny_model_path / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_other_names_pass_through():
    assert resolve_model("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"


def test_tokenizer_round_trips_text_and_marks_assistant_turns(tiny_model_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    text = "What is 17 * 3? Ünïcode and emoji 🙂 survive too."
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text  # byte-level: nothing is unknown
    messages = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "5"}]
    rendered = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    masked = [t for t, m in zip(rendered["input_ids"], rendered["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(masked) == "5<|im_end|>"
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")


def test_presets_have_the_advertised_sizes():
    from transformers import AutoModelForCausalLM

    sizes = {}
    for preset in (*PRESETS, *SHIPPED):
        model = AutoModelForCausalLM.from_pretrained(ensure_builtin(preset))
        sizes[preset] = sum(p.numel() for p in model.parameters())
    assert sizes["tiny"] < 100_000
    assert 1_000_000 < sizes["small"] < 5_000_000
    assert (SHIPPED["small"] / "model.safetensors").stat().st_size < 20 * 2**20  # the limit: 20 MB


def test_small_is_shipped_and_init_model_copies_it(tmp_path):
    from typer.testing import CliRunner

    from llmrl.cli import app

    assert resolve_model("builtin:small") == str(SHIPPED["small"])
    result = CliRunner().invoke(app, ["init-model", "--preset", "small", "--output", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    written = tmp_path / "s" / "model.safetensors"
    assert written.read_bytes() == (SHIPPED["small"] / "model.safetensors").read_bytes()
    result = CliRunner().invoke(app, ["init-model", "--preset", "tiny", "--pretrain", "--output", str(tmp_path / "t")])
    assert result.exit_code == 2 and "--pretrain makes builtin:small" in result.output
