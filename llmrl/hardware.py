"""What a run trains on: the device, the precision, attention, Liger kernels and gradient checkpointing that
follow from it, decided once per run and nowhere else. An option this machine cannot honour (fp16 or QLoRA
without CUDA, a tracker or vLLM that is not installed) is an error here, before anything is written.

Light to import: torch is imported when the hardware is first probed.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmrl.builtin import model_config
from llmrl.errors import LlmrlError

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig

NOT_HARDWARE = ("output_dir", "run_name", "resume", "overwrite")  # keys that never change the hardware choices


@dataclass(frozen=True)
class Hardware:
    """What this process trains on, and the precision and checkpointing that follow from it."""

    device: str  # cuda, mps or cpu
    precision: str  # bf16, fp16 or fp32
    gradient_checkpointing: bool
    attn_implementation: str | None  # None: transformers' choice (sdpa)
    liger: bool  # Liger's fused kernels (Triton: CUDA only)

    def summary(self) -> str:
        """One line for the run log: what was chosen, and on CPU what was switched off."""
        line = f"hardware: {self.device}, {self.precision}, attention {self.attn_implementation or 'sdpa'}"
        line += f", Liger kernels {'on' if self.liger else 'off'}"
        line += f", gradient checkpointing {'on' if self.gradient_checkpointing else 'off'}"
        if self.device != "cuda":
            line += " (bf16, flash attention and Liger need CUDA)"
        return line

    @property
    def dtype(self):
        """torch dtype to load weights in: bf16 weights for bf16 runs, fp32 master weights otherwise."""
        import torch

        return torch.bfloat16 if self.precision == "bf16" else torch.float32


def detect_hardware(cfg: TrainingConfig) -> Hardware:
    """The device, precision and checkpointing for this run; options this machine cannot honour are errors.
    Worked out once per config: the runner, the TRL arguments and model loading all ask for it."""
    key = json.dumps({k: v for k, v in cfg.to_dict().items() if k not in NOT_HARDWARE}, sort_keys=True, default=str)
    cached = cfg.__dict__.get("_hardware")
    if cached is None or cached[0] != key:
        cached = cfg.__dict__["_hardware"] = (key, probe_hardware(cfg))
    return cached[1]


def probe_hardware(cfg: TrainingConfig) -> Hardware:
    import torch

    if torch.cuda.is_available():
        device = "cuda"
    elif torch.backends.mps.is_available():
        device = "mps"
    else:
        device = "cpu"
    precision = cfg.precision
    if precision == "auto":
        if device == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision == "fp16" and device != "cuda":
        raise LlmrlError(f"precision=fp16 needs a CUDA GPU, and this machine has {device} only; use precision=auto")
    if cfg.lora.quantize and device != "cuda":
        raise LlmrlError(
            f"lora.quantize={cfg.lora.quantize} (QLoRA) needs a CUDA GPU, and this machine has {device} only; "
            "drop lora.quantize to train LoRA adapters on the unquantized model"
        )
    if cfg.lora.quantize and importlib.util.find_spec("bitsandbytes") is None:
        raise LlmrlError(f"lora.quantize={cfg.lora.quantize} (QLoRA) needs bitsandbytes: pip install bitsandbytes")
    for tracker in cfg.report_to:
        if tracker not in ("none", "tensorboard") and importlib.util.find_spec(tracker) is None:
            raise LlmrlError(f"report_to names {tracker}, which is not installed: pip install {tracker}")
    if cfg.rl.use_vllm and cfg.method_spec.online:
        if device != "cuda":
            raise LlmrlError(f"rl.use_vllm needs a CUDA GPU, and this machine has {device} only; drop rl.use_vllm")
        if importlib.util.find_spec("vllm") is None:
            raise LlmrlError("rl.use_vllm needs vLLM: pip install 'llmrl[vllm]' (or pip install vllm)")
    liger_installed = importlib.util.find_spec("liger_kernel") is not None
    if cfg.use_liger_kernel and device != "cuda":
        raise LlmrlError(f"use_liger_kernel needs a CUDA GPU, and this machine has {device} only; drop it")
    if cfg.use_liger_kernel and not liger_installed:
        raise LlmrlError("use_liger_kernel needs liger-kernel: pip install 'llmrl[liger]'")
    liger = cfg.use_liger_kernel if cfg.use_liger_kernel is not None else device == "cuda" and liger_installed
    attention = cfg.attn_implementation
    if attention is None and device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        attention = "flash_attention_2"
    checkpointing = cfg.gradient_checkpointing
    if checkpointing is None:
        checkpointing = device == "cuda" and needs_checkpointing(cfg, torch.cuda.get_device_properties(0).total_memory)
    return Hardware(device, precision, checkpointing, attention, liger)


def needs_checkpointing(cfg: TrainingConfig, gpu_bytes: int) -> bool:
    """Whether training would not fit in ``gpu_bytes`` without gradient checkpointing (which costs about a
    third more compute): a rough upper estimate of weights, gradients, AdamW state and the activations of one
    micro-batch, from the model's config alone. When the config cannot be read, checkpointing stays on."""
    config = model_config(cfg.model, cfg.trusts_code_of(cfg.model) if cfg.model else False)
    try:
        text = config.get_text_config()
        hidden, layers, vocab = text.hidden_size, text.num_hidden_layers, text.vocab_size
    except AttributeError:  # no config, or not a transformer's
        return True
    method = cfg.method_spec
    inner = getattr(text, "intermediate_size", None) or 4 * hidden
    params = layers * (4 * hidden * hidden + 3 * hidden * inner) + 2 * vocab * hidden
    weights = 2 * params  # bf16 / fp16
    if cfg.lora.enabled:
        states = weights / (4 if cfg.lora.quantize == "4bit" else 2 if cfg.lora.quantize == "8bit" else 1)
    else:  # gradients, AdamW moments (fp32) and a frozen reference copy for preference and RL methods
        states = weights * (1 + 1 + 4 + (1 if method.reference else 0))
    length = cfg.max_length if isinstance(cfg.max_length, int) else 1024
    if method.online:
        length = min(length, 512) + cfg.rl.max_completion_length
    pairs = 2 if method.pairs else 1  # chosen and rejected in one forward pass
    tokens = cfg.per_device_train_batch_size * pairs * length
    activations = tokens * hidden * layers * 34 + tokens * vocab * 8  # per layer (bf16), then fp32 logits + grads
    return states + activations > 0.8 * gpu_bytes
