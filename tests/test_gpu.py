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
    assert hardware.precision == ("bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16")
    run_training(cfg)
    assert torch.cuda.memory_allocated() < 16 * 2**20  # the trainer, model and optimizer state are gone


def test_liger_kernels_are_applied_without_trls_deprecated_flag(tmp_path):
    """On CUDA with liger-kernel installed, Liger's RMSNorm runs in the model that DPO trains, and building the
    trainer draws no FutureWarning (TRL 1.16 deprecates its use_liger_kernel flag, which llmrl leaves off)."""
    import warnings

    pytest.importorskip("liger_kernel")
    from liger_kernel.transformers.rms_norm import LigerRMSNorm

    from llmrl.methods import dpo
    from llmrl.padding_free import is_padding_free

    sets = ["method=dpo", "model=builtin:small", "dataset=builtin:preference", "data.max_samples=16"]
    cfg = load_config(sets=[*sets, f"output_dir={tmp_path / 'o'}"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = dpo.build_trainer(cfg)
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]
    assert trainer.args.use_liger_kernel is False
    assert trainer.model.model.norm.forward.__func__ is LigerRMSNorm.forward
    assert is_padding_free(trainer.model)  # Liger's layer kernels leave the packed forward in place
    trainer.train()
