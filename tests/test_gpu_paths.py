"""The paths users train on with a GPU, reproduced on the CPU: bf16 master weights, flash attention's rules for
packed rows, fp16's loss scaler, the hardware choices on CUDA machines, the memory estimate, PPO's rollout
micro-batches, ZeRO-3's loading order and merge's dtype. Each test fails on the code before issue 29."""

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from llmrl.builtin import ensure_builtin
from llmrl.config import load_config
from llmrl.runner import run_training

# ---------------------------------------------------------------------------------------------------------
# bf16: fp32 master weights


def moved_fraction(before: dict, after: dict) -> float:
    """The fraction of weight elements whose value changed."""
    total = sum(t.numel() for t in before.values())
    return sum(int((before[k].float() != after[k].float()).sum()) for k in before) / total


def test_a_bf16_run_moves_every_weight_at_rl_learning_rates(tmp_path):
    """Full fine-tuning in bf16 at 1e-6 (GRPO's default rate): with fp32 master weights AdamW's ~1e-6 steps
    move nearly every weight; bf16 weights could not hold them (0.4% moved before issue 29)."""
    base = load_file(ensure_builtin("small") / "model.safetensors")
    sets = ["model=builtin:small", "dataset=builtin:sft", "max_steps=2", f"output_dir={tmp_path / 'o'}"]
    final = run_training(load_config(sets=[*sets, "precision=bf16", "learning_rate=1e-6", "data.max_samples=32"]))
    trained = load_file(final / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in trained.values())
    assert moved_fraction(base, trained) > 0.95


def test_lora_trains_fp32_copies_of_what_it_makes_trainable_in_a_bf16_run(tmp_path):
    """LoRA keeps the frozen base in bf16 (half the memory); what trains is fp32: the adapters, and peft's
    trainable copy of a reward model's score head (which peft makes in the base's bf16)."""
    from llmrl.methods import reward
    from llmrl.run_context import RunContext
    from llmrl.trl_loop import train_and_save

    rows = [{"prompt": f"Q{i}?", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(16)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    sets = ["method=reward", "model=builtin:tiny", f"dataset={tmp_path / 'pairs.jsonl'}", "lora.enabled=true"]
    cfg = load_config(sets=[*sets, "precision=bf16", "max_steps=1", f"output_dir={tmp_path / 'o'}"])
    trainer = reward.build_trainer(cfg)
    frozen = [p for p in trainer.model.parameters() if not p.requires_grad]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)
    train_and_save(trainer, RunContext(cfg))
    trainable = {n: p.dtype for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert any("score" in n for n in trainable) and set(trainable.values()) == {torch.float32}


# ---------------------------------------------------------------------------------------------------------
# Flash attention's rules, on the CPU

CPU_FLASH = "llmrl_cpu_flash"  # registered below: transformers' own flash-attention code over CPU kernels


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1), **_):
    """flash-attn's dense kernel: (batch, seq, heads, dim), causal within each row and nothing else."""
    return attend(q, k, v, softmax_scale, causal)


def flash_attn_varlen_func(
    q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None, dropout_p=0.0, softmax_scale=None,
    causal=False, window_size=(-1, -1), **_
):  # fmt: skip
    """flash-attn's varlen kernel: (tokens, heads, dim) with each sequence's bounds in cu_seqlens."""
    out = torch.empty_like(q)
    bounds = cu_seqlens_q.tolist()
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        out[start:end] = attend(q[None, start:end], k[None, start:end], v[None, start:end], softmax_scale, causal)[0]
    return out


def attend(q, k, v, scale, causal):
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # (batch, heads, seq, dim)
    k, v = (x.repeat_interleave(q.shape[1] // x.shape[1], dim=1) for x in (k, v))
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale).transpose(1, 2)


@pytest.fixture
def cpu_flash_attention():
    """An attention implementation that honours exactly what flash attention honours: transformers' own
    flash-attention forward (which picks varlen when it is given cu_seq_lens, or a padding mask, or when one
    row's position ids restart, and plain causal attention per row otherwise) over CPU kernels, with flash
    attention's mask function (no mask built from position ids)."""
    from transformers import AttentionInterface
    from transformers import modeling_flash_attention_utils as fa
    from transformers.integrations.flash_attention import flash_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    saved = {name: getattr(fa, name) for name in ("_loaded_implementation", "_flash_fn", "_flash_varlen_fn")}
    saved.update({name: getattr(fa, name) for name in ("_pad_fn", "_unpad_fn", "_process_flash_kwargs_fn")})
    fa._loaded_implementation, fa._flash_fn, fa._flash_varlen_fn = CPU_FLASH, flash_attn_func, flash_attn_varlen_func
    fa._pad_fn, fa._unpad_fn = fa._pad_input, fa._unpad_input
    fa._process_flash_kwargs_fn = fa._lazy_define_process_function(flash_attn_varlen_func)
    AttentionInterface.register(CPU_FLASH, flash_attention_forward)
    AttentionMaskInterface.register(CPU_FLASH, flash_attention_mask)
    yield CPU_FLASH
    for name, value in saved.items():
        setattr(fa, name, value)


@pytest.mark.parametrize("method", ["sft", "dpo", "reward"])
def test_padding_free_batches_under_flash_attention_are_the_padded_batches(method, cpu_flash_attention, tmp_path):
    """Under flash attention's rules a packed batch is the padded batch (loss, metrics, gradients): the packed
    forward gives the sequences' boundaries. Before issue 29 it sent several rows with position ids only, and
    flash attention let the sequences of a row attend to each other."""
    import importlib

    from test_padding_free import METRICS, step, write_variable_length_data

    from llmrl.padding_free import is_padding_free

    write_variable_length_data(tmp_path, count=16, longest=30)
    module = importlib.import_module(f"llmrl.methods.{method}")
    dataset = tmp_path / ("chats.jsonl" if method == "sft" else "pairs.jsonl")
    sets = [f"method={method}", "model=builtin:small", f"dataset={dataset}", "group_by_length=false"]
    sets += [f"output_dir={tmp_path / 'o'}", f"attn_implementation={cpu_flash_attention}"]
    padded = module.build_trainer(load_config(sets=[*sets, "padding_free=false"]))
    packed = module.build_trainer(load_config(sets=sets))
    assert is_padding_free(packed.model) and packed.model.config._attn_implementation == cpu_flash_attention
    packed.model.load_state_dict(padded.model.state_dict())

    examples = sorted(padded.train_dataset, key=lambda row: int(padded.data_collator([row])["attention_mask"].sum()))
    batch = padded.data_collator([examples[-1], *examples[:7]])
    loss, metrics, grads = step(padded, batch)
    packed_loss, packed_metrics, packed_grads = step(packed, batch)
    assert torch.allclose(loss, packed_loss, rtol=1e-5, atol=1e-6), (loss, packed_loss)
    for name in METRICS[method]:
        assert packed_metrics[name] == pytest.approx(metrics[name], rel=1e-4, abs=1e-5), name
    for name, grad in grads.items():
        assert torch.allclose(grad, packed_grads[name], rtol=1e-4, atol=1e-6), name


# ---------------------------------------------------------------------------------------------------------
# fp16: the loss scaler's overflows are not NaNs


def test_an_fp16_overflow_is_skipped_by_the_loss_scaler_not_stopped_as_nan(tmp_path):
    """A GradScaler overflow (inf gradients: normal at the start and after each growth of the scale) is
    left to the scaler, which skips that step and halves its scale; only gradients that stay non-finite
    once the scale is below 1 stop the run as NaN (on_nonfinite: stop)."""
    from llmrl.run_context import NonFiniteError, NonFiniteGuard

    model = torch.nn.Linear(4, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    accelerator = SimpleNamespace(scaler=scaler, num_processes=1)  # what the guard reads of accelerate's
    guard = NonFiniteGuard("stop", tmp_path)
    before = model.weight.detach().clone()
    scaler.scale(model(torch.full((2, 4), 1e30)).sum() * 1e30).backward()  # a forced overflow
    assert guard.usable(model.parameters(), 1, accelerator)  # the scaler's business, not a NaN
    scaler.step(optimizer)
    scaler.update()
    assert torch.equal(model.weight, before) and scaler.get_scale() == 2.0**15  # skipped, scale halved
    scaler.update(new_scale=0.5)  # 17 overflows in a row: the gradients are non-finite at any scale
    with pytest.raises(NonFiniteError, match="NaN or inf gradients at step 2"):
        guard.usable(model.parameters(), 2, accelerator)


def test_emulated_bf16_cards_train_in_fp16_and_old_gpus_keep_sdpa(monkeypatch):
    """A T4 or V100 reports bf16 'supported' through emulation (several times slower): auto precision picks
    fp16 there. flash-attn needs compute capability 8.0 and a build that imports."""
    import importlib.util

    from llmrl.hardware import detect_hardware, flash_attention_runs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(total_memory=16 * 2**30))
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "flash_attn" else find_spec(name))
    hardware = detect_hardware(load_config(sets=["model=builtin:small"]))
    assert (hardware.precision, hardware.attn_implementation) == ("fp16", None)
    assert not flash_attention_runs((8, 0))  # installed by name, but flash_attn does not import here


# ---------------------------------------------------------------------------------------------------------
# Memory


def test_the_memory_estimate_counts_what_trl_builds(tmp_path):
    """SFT of a Qwen2.5-0.5B-shaped model at 8 x 1024 fits a 40 GB GPU without checkpointing: TRL computes
    log-probabilities in tiles and never builds the (tokens x vocabulary) fp32 logits the old estimate
    counted (10 GB here), which turned checkpointing on for nothing. PPO counts its value and reward models
    and its response logits; a colocated vLLM takes its share first."""
    from transformers import Qwen2Config

    from llmrl.hardware import needs_checkpointing, training_memory

    Qwen2Config(
        hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
    ).save_pretrained(tmp_path / "qwen")  # fmt: skip
    gib = 2**30
    sft = ["model=" + str(tmp_path / "qwen"), "per_device_train_batch_size=8", "max_length=1024", "precision=bf16"]
    parts = training_memory(load_config(sets=sft))
    assert parts["logits"] == 0 and 7 * gib < parts["trained"] < 9 * gib  # 494M parameters x 18 bytes
    assert not needs_checkpointing(load_config(sets=sft), 40 * gib)
    assert needs_checkpointing(load_config(sets=sft), 16 * gib)
    ppo = [*sft[:2], "method=ppo", "rewards=[reward_model:" + str(tmp_path / "qwen") + "]"]
    ppo_parts = training_memory(load_config(sets=ppo))
    assert ppo_parts["trained"] == 2 * training_memory(load_config(sets=[*sft[:2], "method=grpo"]))["trained"]
    assert ppo_parts["frozen"] > 0 and ppo_parts["logits"] > 0
    grpo = [*sft[:3], "method=grpo", "rewards=[accuracy]", "rl.use_vllm=true"]
    grpo_needs = sum(training_memory(load_config(sets=grpo)).values())
    room = grpo_needs / 0.8 / 0.85  # fits a GPU this size alone, not with vLLM holding 30% of it
    assert not needs_checkpointing(load_config(sets=grpo[:-1]), room)
    assert needs_checkpointing(load_config(sets=grpo), room)


def test_ppo_scores_a_rollout_one_micro_batch_at_a_time(tmp_path):
    """PPO's rollout forwards (policy, reference, value model) run per_device_train_batch_size rows at a time,
    not on the whole rollout (batch x gradient_accumulation_steps rows) at once."""
    from llmrl.methods import ppo

    rows = [{"prompt": f"What is {i} + 1?", "solution": str(i + 1)} for i in range(16)]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    sets = ["method=ppo", "model=builtin:tiny", f"dataset={tmp_path / 'prompts.jsonl'}", "rewards=[accuracy]"]
    cfg = load_config(sets=[*sets, "per_device_train_batch_size=2", "gradient_accumulation_steps=4"])
    cfg.output_dir, cfg.rl.max_completion_length = str(tmp_path / "o"), 4
    trainer = ppo.build_trainer(cfg)
    scored = []  # the batch of every forward that scores the rollout (generation's forwards use the cache)

    def record(module, args, kwargs):
        if not kwargs.get("use_cache"):
            scored.append(len(kwargs["input_ids"]))

    for model in (trainer.policy, trainer.reference, trainer.value_model):
        model.register_forward_pre_hook(record, with_kwargs=True)
    rollout = trainer.rollout([trainer.dataset[i] for i in range(8)])
    assert rollout.logprobs.shape[0] == 8
    assert scored == [2] * 12  # policy, reference and value model: 4 micro-batches of 2 rows each


# ---------------------------------------------------------------------------------------------------------
# ZeRO-3, merge


@pytest.mark.parametrize("method", ["sft", "dpo", "kto", "reward", "grpo", "rloo"])
def test_the_trl_config_exists_before_the_model_loads(method, monkeypatch, tmp_path):
    """Under ZeRO-3 transformers loads a model sharded (zero.Init) only when the TrainingArguments holding the
    DeepSpeed config exist already: every method builds its TRL config first (GRPO and RLOO loaded the
    model first before issue 29, so every rank loaded the whole model)."""
    import importlib

    module = importlib.import_module(f"llmrl.methods.{method}")
    order = []
    real_trl_config, real_load_model = module.trl_config, module.load_model
    monkeypatch.setattr(module, "trl_config", lambda *a, **k: order.append("config") or real_trl_config(*a, **k))
    monkeypatch.setattr(module, "load_model", lambda *a, **k: order.append("model") or real_load_model(*a, **k))
    data = {"sft": "builtin:sft", "grpo": "builtin:prompts", "rloo": "builtin:prompts"}.get(
        method, "builtin:preference"
    )
    sets = [f"method={method}", "model=builtin:tiny", f"dataset={data}", "data.max_samples=8", f"output_dir={tmp_path}"]
    module.build_trainer(load_config(sets=[*sets, *(["rewards=[accuracy]"] if method in ("grpo", "rloo") else [])]))
    assert order[:2] == ["config", "model"], order


def test_merge_saves_in_the_base_models_dtype(tmp_path):
    """llmrl merge writes the merged model in the dtype its base is stored in (bf16 for hub models: half the
    disk of fp32), merging in fp32 first."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmrl.merge import merge_adapter

    tiny = ensure_builtin("tiny")
    base = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.bfloat16)
    base.save_pretrained(tmp_path / "base")
    AutoTokenizer.from_pretrained(tiny).save_pretrained(tmp_path / "base")
    adapter = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    adapter.save_pretrained(tmp_path / "adapter")
    merged = merge_adapter(tmp_path / "adapter", tmp_path / "merged", base=str(tmp_path / "base"))
    weights = load_file(merged / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}
    assert json.loads((merged / "config.json").read_text())["dtype"] == "bfloat16"


def test_ppo_loads_its_value_model_as_it_loads_the_policy(tmp_path):
    """The value model is trained like the policy: the run's attention implementation (and Liger's kernels, on
    CUDA) and fp32 weights; it loaded with transformers' defaults before issue 29."""
    from accelerate.state import AcceleratorState

    from llmrl.methods import ppo

    AcceleratorState._reset_state(reset_partial_state=True)  # an earlier test's fp32 state would refuse bf16
    sets = ["method=ppo", "model=builtin:tiny", "dataset=builtin:prompts", "rewards=[accuracy]"]
    cfg = load_config(sets=[*sets, "attn_implementation=eager", "precision=bf16", f"output_dir={tmp_path}"])
    trainer = ppo.build_trainer(cfg)
    value_model = trainer.accelerator.unwrap_model(trainer.value_model)
    assert value_model.config._attn_implementation == "eager"
    assert {p.dtype for p in value_model.parameters()} == {torch.float32}
    assert {p.dtype for p in trainer.reference.parameters()} == {torch.bfloat16}  # frozen: compute dtype


def test_plain_text_prompts_get_the_bos_token_and_chat_prompts_have_it_once(tmp_path):
    """A Llama- or Gemma-style base model expects BOS first: plain-text prompts are tokenized with the
    tokenizer's special tokens, chat prompts through the template (which writes BOS itself) without."""
    from families import build_family
    from transformers import AutoTokenizer

    from llmrl.generation import encode_prompts

    tokenizer = AutoTokenizer.from_pretrained(build_family("llama3", tmp_path / "llama3"))
    bos = tokenizer.bos_token_id
    plain, chat = encode_prompts(tokenizer, ["What is 2 + 2?", [{"role": "user", "content": "What is 2 + 2?"}]])
    assert plain[0] == bos and plain.count(bos) == 1
    assert chat[0] == bos and chat.count(bos) == 1


def test_the_prepared_gpu_check_runs_its_cpu_rehearsal(tmp_path, monkeypatch):
    """scripts/gpu_check.py runs once when a GPU is lent: its checks must still run against today's code (here
    the CPU rehearsal of three of them), so that GPU minutes go to measuring, not to fixing the script."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "scripts"))
    import gpu_check

    context = gpu_check.Context(tmp_path, budget_seconds=120)
    results = {
        name: gpu_check.run_check(context, name) for name in ("packed_equals_padded_sdpa", "ppo_peak_accumulation")
    }
    assert results["packed_equals_padded_sdpa"]["status"] == "pass", results
    assert results["ppo_peak_accumulation"]["status"] == gpu_check.NEEDS_CUDA, results  # ran at tiny shapes
    assert "| packed_equals_padded_sdpa | pass |" in gpu_check.markdown(
        {"date": "2026-12-04", "machine": gpu_check.machine(), "total_seconds": 1.0, "checks": results}
    )
