"""Checks that need a CUDA GPU; skipped elsewhere (CI has none)."""

import pytest

from llmrl.config import load_config

pytestmark = pytest.mark.gpu


def test_cuda_run_picks_bf16_and_releases_memory(tmp_path):
    import torch

    from llmrl.hardware import detect_hardware
    from llmrl.runner import run_training

    cfg = load_config(
        sets=["model=builtin:small", "dataset=builtin:sft", "max_steps=3", f"output_dir={tmp_path / 'o'}"]
    )
    hardware = detect_hardware(cfg)
    assert (hardware.device, hardware.gradient_checkpointing) == ("cuda", False)  # 18M parameters fit easily
    assert hardware.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    run_training(cfg)
    assert torch.cuda.memory_allocated() < 16 * 2**20  # the trainer, model and optimizer state are gone
