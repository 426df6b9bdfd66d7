"""Loading what a run trains: the tokenizer (its chat template prepared and checked), the model (trained
weights in fp32, frozen ones in the compute dtype, quantized for QLoRA), and peft's LoRA config. Light to
import: transformers and peft are imported when something is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from llmrl.builtin import missing_tokenizer, resolve_model
from llmrl.chat_template import end_token_ids, preflight
from llmrl.errors import LlmrlError, loading_failed
from llmrl.files import read_text
from llmrl.hardware import detect_hardware

if TYPE_CHECKING:
    from llmrl.config import TrainingConfig


def load_tokenizer(cfg: TrainingConfig, model: str | None = None, strict: bool = True, **kwargs):
    """The tokenizer of ``model`` (default: the run's), prepared and checked by the chat-template preflight
    (``llmrl.chat_template.preflight``): a pad token, a template (llmrl's plain one for a model without),
    ``chat_template_kwargs`` as its defaults. A failed check is an error when ``strict`` and the run trains on
    the template's turns (every method but reward modeling), else a warning."""
    from transformers import AutoTokenizer

    name = model or cfg.model
    path = resolve_model(name)
    if missing := missing_tokenizer(path):
        raise LlmrlError(f"could not load the tokenizer of model '{name}': {missing}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trusts_code_of(name), **kwargs)
    except (OSError, ValueError) as e:
        raise loading_failed(f"could not load the tokenizer of model '{name}'", e, name) from e
    if clones_template(cfg, model):
        use_template_of(cfg.sft.chat_template_path, tokenizer)
    preflight(tokenizer, name, strict and cfg.method != "reward", cfg.chat_template_kwargs)
    return tokenizer


def clones_template(cfg: TrainingConfig, model: str | None) -> bool:
    """Whether the run's model learns another chat template (``sft.chat_template_path``), whose tokens its
    tokenizer gains and its embeddings then grow to."""
    return cfg.method == "sft" and bool(cfg.sft.chat_template_path) and model is None


def use_template_of(source: str, tokenizer) -> None:
    """``sft.chat_template_path``: the chat template of a Jinja file, or of a tokenizer folder or hub name,
    with the tokens that tokenizer adds and its eos token (as TRL's ``clone_chat_template``: the model's
    embeddings then grow to the tokenizer, in ``load_model``)."""
    from transformers import AutoTokenizer

    path = Path(source)
    if path.suffix in (".jinja", ".j2"):
        if not path.is_file():
            raise LlmrlError(f"sft.chat_template_path: no such file {source}")
        tokenizer.chat_template = read_text(path, "sft.chat_template_path")
        return
    try:
        other = AutoTokenizer.from_pretrained(resolve_model(source))
    except (OSError, ValueError) as e:
        raise loading_failed(f"sft.chat_template_path: could not load the tokenizer {source}", e, source) from e
    if not other.chat_template:
        raise LlmrlError(f"sft.chat_template_path: {source} has no chat template")
    tokenizer.chat_template = other.get_chat_template()
    tokenizer.add_tokens([t for t in other.added_tokens_decoder.values() if t.content not in tokenizer.vocab])
    tokenizer.eos_token = other.eos_token


def load_model(cfg: TrainingConfig, tokenizer, model_class=None, model: str | None = None, frozen=False, **kwargs):
    """``model`` (default: the run's ``cfg.model``; a hub name, folder or builtin:PRESET) as ``model_class``
    (default: ``AutoModelForCausalLM``), with the run's attention and Liger kernels.

    Weights that train are fp32, as TRL loads them: bf16 runs compute in bf16 by autocast and keep fp32 master
    weights, since a bf16 weight cannot take a step much below 1/256 of itself (at 1e-6, AdamW would leave
    almost every weight unchanged). ``frozen`` models (a reference, a teacher) and LoRA's frozen base load in
    the compute dtype (bf16: half the memory); QLoRA quantizes the base. A causal LM's generation config gets
    every end token of ``tokenizer`` (``end_token_ids``: its eos and the chat template's end of turn), so
    generation stops at the end of a turn in every trainer, and in the saved model."""
    import torch
    from transformers import AutoModelForCausalLM, set_seed

    model_class = model_class or AutoModelForCausalLM
    name = model or cfg.model
    hardware = detect_hardware(cfg)
    dtype = hardware.compute_dtype if frozen or cfg.lora.enabled else torch.float32
    kwargs.update(dtype=dtype, trust_remote_code=cfg.trusts_code_of(name))
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
            bnb_4bit_compute_dtype=hardware.compute_dtype,
        )
        kwargs["device_map"] = {"": PartialState().local_process_index}
    set_seed(cfg.seed)  # new weights (a reward model's score head, a value head) are the same in every run
    loaded = from_pretrained(model_class, name, f"could not load model '{name}' as {model_class.__name__}", **kwargs)
    embeddings = loaded.get_input_embeddings().num_embeddings
    if len(tokenizer) > embeddings and clones_template(cfg, model):  # the tokens of the cloned chat template
        loaded.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)  # rounded up, as TRL does
        loaded.config.get_text_config().eos_token_id = tokenizer.eos_token_id
    elif len(tokenizer) > embeddings:
        raise LlmrlError(
            f"the tokenizer of '{name}' has {len(tokenizer)} tokens and the model's embeddings {embeddings}: they "
            "were not saved together (a token past the embeddings would fail); use the tokenizer saved with it"
        )
    if hardware.liger:
        apply_liger_kernels(loaded)
    if getattr(loaded, "generation_config", None) is not None and loaded.can_generate():
        loaded.generation_config.eos_token_id = end_token_ids(tokenizer, loaded.generation_config)
        loaded.generation_config.pad_token_id = tokenizer.pad_token_id
    return loaded


def from_pretrained(model_class, name: str, what: str, **kwargs):
    """``model_class.from_pretrained`` of the model ``name`` (hub name, folder or builtin:PRESET), its failures
    one clear error starting with ``what``: a missing or unreadable model, code it ships that is not trusted,
    a damaged weights file (safetensors' own error type)."""
    try:
        return model_class.from_pretrained(resolve_model(name), **kwargs)
    except Exception as e:
        if not isinstance(e, (OSError, ValueError)) and type(e).__name__ != "SafetensorError":
            raise
        raise loading_failed(what, e, name) from e


def fp32_trainable_weights(model) -> None:
    """Cast every trainable parameter that is not fp32 to fp32 (the master weights of a bf16 run), in place.
    Needed where a wrapper makes trainable copies of frozen bf16 weights: peft's ``modules_to_save`` (a reward
    model's score head under LoRA)."""
    import torch

    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32 and parameter.is_floating_point():
            parameter.data = parameter.data.float()


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
