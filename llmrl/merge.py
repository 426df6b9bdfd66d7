"""Merge a LoRA adapter into its base model and save a standalone model and tokenizer (``llmrl merge``)."""

import json
import shutil
import tempfile
from pathlib import Path

from llmrl.builtin import resolve_model
from llmrl.errors import LlmrlError, first_line


def merge_adapter(adapter: Path, output: Path, base: str | None = None) -> Path:
    """Write ``base`` + ``adapter`` merged into ``output`` (a new folder, written atomically), in the dtype the
    base model is stored in (bf16 for most hub models; merged in fp32 first).

    ``base`` defaults to the model named in the adapter's ``adapter_config.json``. A reward model's adapter
    (task type ``SEQ_CLS``) is merged into a sequence classifier, with its trained score head.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    adapter, output = Path(adapter).expanduser(), Path(output).expanduser()
    config_file = adapter / "adapter_config.json"
    if not config_file.is_file():
        raise LlmrlError(f"{adapter} is not a LoRA adapter folder: it has no adapter_config.json")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise LlmrlError(f"{output} already exists and is not an empty folder; choose a new one")
    adapter_config = json.loads(config_file.read_text())
    base = base or adapter_config.get("base_model_name_or_path")
    if not base:
        raise LlmrlError(f"{config_file} names no base model: pass --base")

    is_reward_model = adapter_config.get("task_type") == "SEQ_CLS"
    model_class = AutoModelForSequenceClassification if is_reward_model else AutoModelForCausalLM
    extra = {"num_labels": 1} if is_reward_model else {}
    tokenizer_source = adapter if (adapter / "tokenizer_config.json").is_file() else resolve_model(base)
    try:
        stored = AutoConfig.from_pretrained(resolve_model(base)).dtype or torch.float32
        model = model_class.from_pretrained(resolve_model(base), dtype=torch.float32, **extra)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
        merged = PeftModel.from_pretrained(model, adapter).merge_and_unload().to(stored)
    except (OSError, ValueError, RuntimeError) as e:
        raise LlmrlError(f"could not merge {adapter} into '{base}': {first_line(e)}") from e
    if is_reward_model and tokenizer.pad_token_id is not None:
        merged.config.pad_token_id = tokenizer.pad_token_id

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if output.exists():
            output.rmdir()
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output
