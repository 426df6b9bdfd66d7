"""TrainingConfig -> TRL config: the hardware choices made in one place, and the shared fields carried over."""

import warnings
from types import SimpleNamespace

import pytest
from trl import SFTConfig

from llmrl.config import load_config
from llmrl.errors import LlmrlError
from llmrl.hardware import detect_hardware
from llmrl.trl_args import trl_config


@pytest.fixture(autouse=True)
def cpu_only(monkeypatch):
    """These tests describe a machine without a GPU, whatever machine runs them."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def build(*sets):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no deprecated TRL/transformers argument is used
        return trl_config(load_config(sets=["output_dir=out", *sets]), SFTConfig)


def test_cpu_machine_gets_cpu_safe_settings():
    args = build()
    assert args.use_cpu is True and args.bf16 is False and args.fp16 is False
    assert args.gradient_checkpointing is False  # TRL defaults it to True
    assert args.learning_rate == SFTConfig.learning_rate  # no learning_rate given: the method's TRL default


def test_shared_fields_are_carried_over():
    args = build(
        "learning_rate=3e-4",
        "max_steps=7",
        "per_device_train_batch_size=2",
        "gradient_accumulation_steps=3",
        "logging_steps=2",
        "save_steps=4",
        "seed=5",
        "report_to=[tensorboard]",
        "eval_split=test",
        "gradient_checkpointing=true",
        "max_grad_norm=0.5",
    )
    assert (args.learning_rate, args.max_steps, args.per_device_train_batch_size) == (3e-4, 7, 2)
    assert (args.gradient_accumulation_steps, args.logging_steps, args.save_steps, args.seed) == (3, 2, 4, 5)
    assert args.report_to == ["tensorboard"] and args.eval_strategy == "steps" and args.eval_steps == 2
    assert args.gradient_checkpointing is True and args.max_grad_norm == 0.5
    assert build().max_steps == -1 and build().report_to == []


def test_fp16_on_cpu_is_refused_up_front():
    with pytest.raises(LlmrlError, match="precision=fp16 needs a CUDA GPU"):
        detect_hardware(load_config(sets=["precision=fp16"]))


def test_auto_precision_on_cpu_is_fp32():
    hardware = detect_hardware(load_config())
    assert (hardware.device, hardware.precision, hardware.gradient_checkpointing) == ("cpu", "fp32", False)


def test_cuda_speed_features_switch_off_on_cpu_with_a_note():
    hardware = detect_hardware(load_config())
    assert not hardware.liger and hardware.attn_implementation is None
    assert hardware.summary() == (
        "hardware: cpu, fp32, attention sdpa, Liger kernels off, gradient checkpointing off "
        "(bf16, flash attention and Liger need CUDA)"
    )
    assert build().use_liger_kernel is False
    with pytest.raises(LlmrlError, match="use_liger_kernel needs a CUDA GPU"):
        detect_hardware(load_config(sets=["use_liger_kernel=true"]))


def test_cuda_machine_gets_bf16_flash_attention_and_liger_when_installed(monkeypatch):
    """The choices on a CUDA machine (none here: CUDA and the installed packages are what detect_hardware asks;
    flash-attn must import, which a module of that name in sys.modules stands for)."""
    import importlib.util
    import sys
    import types

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(total_memory=80 * 2**30))
    monkeypatch.setitem(sys.modules, "flash_attn", types.ModuleType("flash_attn"))
    find_spec = importlib.util.find_spec
    extras = ("liger_kernel", "flash_attn")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name in extras else find_spec(name))
    hardware = detect_hardware(load_config())
    assert (hardware.precision, hardware.attn_implementation, hardware.liger) == ("bf16", "flash_attention_2", True)
    assert hardware.gradient_checkpointing  # no model named: its size is unknown, so checkpointing stays on
    assert not detect_hardware(load_config(sets=["model=builtin:small"])).gradient_checkpointing  # fits
    chosen = detect_hardware(load_config(sets=["use_liger_kernel=false", "attn_implementation=sdpa"]))
    assert (chosen.attn_implementation, chosen.liger) == ("sdpa", False)


def test_gradient_checkpointing_is_chosen_by_the_memory_training_needs(tmp_path):
    """A Qwen2.5-0.5B-shaped model (its config only) at batch 8 x 512 needs checkpointing on a 6 GB GPU, not
    on an 80 GB one; the built-in small model never does; a LoRA run needs far less than a full one."""
    from transformers import Qwen2Config

    from llmrl.hardware import needs_checkpointing

    Qwen2Config(
        hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, vocab_size=151936
    ).save_pretrained(tmp_path / "qwen-shaped")
    qwen = ["model=" + str(tmp_path / "qwen-shaped"), "per_device_train_batch_size=8", "max_length=512"]
    gib = 2**30
    assert needs_checkpointing(load_config(sets=qwen), 6 * gib)
    assert not needs_checkpointing(load_config(sets=qwen), 80 * gib)
    assert needs_checkpointing(load_config(sets=qwen), 16 * gib)
    assert not needs_checkpointing(
        load_config(sets=[*qwen, "lora.enabled=true", "per_device_train_batch_size=2"]), 16 * gib
    )
    assert not needs_checkpointing(load_config(sets=["model=builtin:small"]), 6 * gib)


def test_the_hardware_is_worked_out_once_per_run(tmp_path, chat_jsonl, monkeypatch):
    import llmrl.hardware
    from llmrl.config import load_config
    from llmrl.runner import run_training

    calls = []
    probe = llmrl.hardware.probe_hardware
    monkeypatch.setattr(llmrl.hardware, "probe_hardware", lambda cfg: calls.append(1) or probe(cfg))
    sets = ["model=builtin:tiny", f"dataset={chat_jsonl}", f"output_dir={tmp_path / 'run'}", "max_steps=1"]
    run_training(load_config(sets=sets))
    assert len(calls) == 1
    cfg = load_config(sets=[*sets, "precision=fp32"])
    assert llmrl.hardware.detect_hardware(cfg).precision == "fp32"
    cfg.precision = "fp16"  # a changed config is worked out anew (and fp16 without CUDA is refused)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(Exception, match="fp16 needs a CUDA GPU"):
            llmrl.hardware.detect_hardware(cfg)
