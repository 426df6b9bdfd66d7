"""Loading what a run trains: the tokenizer, the model in the run's dtype (quantized for QLoRA), and peft's
LoRA config. Light to import: transformers and peft are imported when something is loaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmrl.builtin import missing_tokenizer, resolve_model
from llmrl.errors import LlmrlError, loading_failed
from llmrl.hardware import detect_hardware

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig


def load_tokenizer(cfg: TrainingConfig):
    """The model's tokenizer, with a pad token (the EOS token when the model has none)."""
    from transformers import AutoTokenizer

    path = resolve_model(cfg.model)
    if missing := missing_tokenizer(path):
        raise LlmrlError(f"could not load the tokenizer of model '{cfg.model}': {missing}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trusts_code_of(cfg.model))
    except (OSError, ValueError) as e:
        raise loading_failed(f"could not load the tokenizer of model '{cfg.model}'", e, cfg.model) from e
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(cfg: TrainingConfig, model_class=None, model: str | None = None, **kwargs):
    """``model`` (default: the run's ``cfg.model``; a hub name, folder or builtin:PRESET) as ``model_class``
    (default: ``AutoModelForCausalLM``), in the run's dtype; quantized for QLoRA when ``lora.quantize`` is set."""
    from transformers import AutoModelForCausalLM, set_seed

    model_class = model_class or AutoModelForCausalLM
    name = model or cfg.model
    hardware = detect_hardware(cfg)
    kwargs.update(dtype=hardware.dtype, trust_remote_code=cfg.trusts_code_of(name))
    if hardware.attn_implementation:
        kwargs["attn_implementation"] = hardware.attn_implementation
    if cfg.lora.quantize:
        from accelerate import PartialState
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=cfg.lora.quantize == "4bit",
            load_in_8bit=cfg.lora.quantize == "8bit",
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=hardware.dtype,
        )
        kwargs["device_map"] = {"": PartialState().local_process_index}
    set_seed(cfg.seed)  # new weights (a reward model's score head, a value head) are the same in every run
    try:
        loaded = model_class.from_pretrained(resolve_model(name), **kwargs)
    except (OSError, ValueError) as e:
        raise loading_failed(f"could not load model '{name}' as {model_class.__name__}", e, name) from e
    if hardware.liger:
        apply_liger_kernels(loaded)
    return loaded


def apply_liger_kernels(model) -> None:
    """Liger's Triton kernels (RMSNorm, RoPE, SwiGLU, ...) in this model's layers, through Liger's own entry
    point for a loaded model (the one transformers' Trainer calls), for every method alike: TRL 1.16 deprecates
    its ``use_liger_kernel`` flag in favour of Hub kernels, which cannot be downloaded offline. Liger's fused
    linear cross-entropy stays off: TRL's trainers replace the LM head's forward with their own fused one, and
    llmrl's PPO reads the logits. A model type Liger does not know is left as it is (Liger logs it)."""
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model=model, fused_linear_cross_entropy=False, cross_entropy=False)


def peft_config(cfg: TrainingConfig, task_type: str = "CAUSAL_LM"):
    """peft's LoraConfig from the ``lora`` section, or None when LoRA is off. For a sequence classifier
    (``SEQ_CLS``) peft also trains the new score head, which has no pretrained weights to keep."""
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    modules = cfg.lora.target_modules
    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules="all-linear" if modules == ["all-linear"] else modules,
        task_type=task_type,
    )
