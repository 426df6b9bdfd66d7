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
from llmrl.reward_specs import parse_spec

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
        precision = self.precision if self.precision == "fp32" else f"{self.precision} autocast, fp32 master weights"
        line = f"hardware: {self.device}, {precision}, attention {self.attn_implementation or 'sdpa'}"
        line += f", Liger kernels {'on' if self.liger else 'off'}"
        line += f", gradient checkpointing {'on' if self.gradient_checkpointing else 'off'}"
        if self.device != "cuda":
            line += " (bf16, flash attention and Liger need CUDA)"
        return line

    @property
    def compute_dtype(self):
        """The torch dtype the run computes in (autocast's): bf16, fp16 or fp32. Frozen weights (a reference,
        a teacher, LoRA's base) are loaded in it; trained weights are always fp32 (``llmrl.loading``)."""
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision, torch.float32)


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
            # emulated bf16 (T4, V100: no bf16 units) is several times slower than fp16 with a loss scaler
            precision = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
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
    if attention is None and device == "cuda" and flash_attention_runs(torch.cuda.get_device_capability(0)):
        attention = "flash_attention_2"
    checkpointing = cfg.gradient_checkpointing
    if checkpointing is None:
        checkpointing = device == "cuda" and needs_checkpointing(cfg, torch.cuda.get_device_properties(0).total_memory)
    return Hardware(device, precision, checkpointing, attention, liger)


def flash_attention_runs(capability: tuple[int, int]) -> bool:
    """Whether flash-attn 2 can run here: the package imports (a wheel built for another torch or CUDA fails
    on import, not on find_spec) and the GPU is an Ampere or newer (compute capability 8.0: A100, RTX 30xx,
    L4, H100); older cards (T4, V100) keep SDPA."""
    if capability < (8, 0) or importlib.util.find_spec("flash_attn") is None:
        return False
    try:
        import flash_attn  # noqa: F401
    except Exception:  # an ImportError, or an undefined symbol of a mismatched build
        return False
    return True


def needs_checkpointing(cfg: TrainingConfig, gpu_bytes: int) -> bool:
    """Whether training would not fit in ``gpu_bytes`` without gradient checkpointing (which costs about a
    third more compute), by ``training_memory``; when the model's config cannot be read, checkpointing stays on.
    A colocated vLLM (``rl.use_vllm``) takes its share of the GPU first."""
    needed = training_memory(cfg)
    if needed is None:
        return True
    if cfg.rl.use_vllm and cfg.method_spec.online and cfg.rl.vllm_mode == "colocate":
        gpu_bytes *= 1 - float(cfg.trl.get("vllm_gpu_memory_utilization", VLLM_SHARE))
    return sum(needed.values()) > 0.8 * gpu_bytes  # the rest: CUDA context, allocator slack, NCCL buffers


VLLM_SHARE = 0.3  # TRL's default vllm_gpu_memory_utilization in colocate mode


def training_memory(cfg: TrainingConfig) -> dict[str, int] | None:
    """A rough upper estimate of the GPU bytes one process needs to train ``cfg``, by part, from the model's
    config alone (None when it cannot be read):

    - ``trained``: the trained weights in fp32 with their gradients and AdamW's two moments (16 bytes a
      parameter), and their bf16/fp16 copies under autocast; with LoRA, the frozen base in the compute dtype
      (or quantized) and small adapters;
    - ``frozen``: the models that only score: a reference (TRL loads it in the policy's fp32; PPO's is in
      the compute dtype), PPO's reward model; PPO's value model is trained, counted like the policy;
    - ``activations``: what one micro-batch keeps for the backward pass without checkpointing, 18 x hidden +
      8 x intermediate bytes a token per layer under bf16 autocast (measured on a Qwen2 layer: saved tensors
      of the forward pass);
    - ``logits``: TRL's trainers compute log-probabilities in tiles (no full logits); llmrl's PPO keeps the
      response positions' logits of one micro-batch (bf16, their fp32 copy, log-softmax and its gradient)."""
    shape = model_shape(cfg.model, cfg)
    if shape is None:
        return None
    params, hidden, inner, layers, vocab = shape
    method, half = cfg.method_spec, 2 if cfg.precision != "fp32" else 0
    if cfg.lora.enabled:
        base_bytes = {"4bit": 0.5, "8bit": 1.0}.get(cfg.lora.quantize, 2.0 if half else 4.0)
        trained = int(params * base_bytes * 1.05)  # adapters, their gradients and moments: a few percent
    else:
        trained = params * (16 + half)
    frozen = 0
    reference = method.reference and not cfg.lora.enabled and not (cfg.method == "grpo" and not cfg.rl.beta)
    if cfg.method == "ppo":
        frozen += params * (half or 4) if reference else 0
        trained *= 2  # the value model: a transformer of the policy's size, trained
        for kind, source in map(parse_spec, cfg.rewards):
            if kind == "reward_model" and (reward := model_shape(source, cfg)):
                frozen += reward[0] * (half or 4)
    elif reference:
        frozen += params * 4  # TRL builds the reference like the policy: fp32
    length = cfg.max_length if isinstance(cfg.max_length, int) else 1024
    response = cfg.rl.max_completion_length
    if method.online:
        length = min(length, 512) + response
    pairs = 2 if method.pairs else 1  # chosen and rejected in one forward pass
    tokens = cfg.per_device_train_batch_size * pairs * length
    per_layer = (18 * hidden + 8 * inner) * (1 if half else 2)
    activations = tokens * per_layer * layers
    if cfg.method == "ppo":
        activations *= 2  # the value model's forward and backward in the same step
    logits = cfg.per_device_train_batch_size * response * vocab * 14 if cfg.method == "ppo" else 0
    return {"trained": trained, "frozen": frozen, "activations": activations, "logits": logits}


def model_shape(model: str | None, cfg: TrainingConfig) -> tuple[int, int, int, int, int] | None:
    """(parameters, hidden size, intermediate size, layers, vocabulary) from a model's config, or None."""
    config = model_config(model, cfg.trusts_code_of(model) if model else False)
    try:
        text = config.get_text_config()
        hidden, layers, vocab = text.hidden_size, text.num_hidden_layers, text.vocab_size
    except AttributeError:  # no config, or not a transformer's
        return None
    inner = getattr(text, "intermediate_size", None) or 4 * hidden
    embeddings = vocab * hidden * (1 if getattr(text, "tie_word_embeddings", False) else 2)
    return layers * (4 * hidden * hidden + 3 * hidden * inner) + embeddings, hidden, inner, layers, vocab
