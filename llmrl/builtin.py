"""Built-in models, offline: ``--model builtin:tiny`` (for unit tests) or ``builtin:small`` (a toy base model).

Both are Llama-architecture causal LMs with a byte-level BPE tokenizer and a ChatML chat template whose
assistant turns carry ``{% generation %}`` markers (so SFT can mask everything but the assistant's tokens).

- ``builtin:tiny`` (about 35k parameters) is randomly initialised, with a tokenizer trained on the bundled
  sample data: it is built once, deterministically, into the cache (``$LLMRL_CACHE``, default
  ``~/.cache/llmrl``) and reused from there.
- ``builtin:small`` (about 2M parameters) is pretrained: llmrl ships its weights in ``llmrl/models/small/``,
  made by ``python -m llmrl.pretrain`` (a fixed, seeded recipe; see ``llmrl/pretrain.py``) on the synthetic
  corpus of ``llmrl/corpus.py``.
"""

import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

from llmrl.errors import LlmrlError
from llmrl.files import looks_like_path

PREFIX = "builtin:"  # what llmrl ships or builds: builtin:sft (data), builtin:tiny (model)
SAMPLES_DIR = Path(__file__).parent / "data" / "samples"  # the bundled datasets (builtin:sft, ...)

# Bump when a built preset's recipe changes, so that stale cached copies are rebuilt rather than reused.
RECIPE_VERSION = 4
PRESETS = {
    # about 35k parameters, random weights: fast enough for unit tests
    "tiny": dict(
        vocab_size=512,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),
}
SHIPPED = {"small": Path(__file__).parent / "models" / "small"}  # pretrained presets whose weights llmrl ships
SPECIAL_TOKENS = {"bos_token": "<|bos|>", "eos_token": "<|im_end|>", "pad_token": "<|pad|>"}
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def cache_dir() -> Path:
    root = os.environ.get("LLMRL_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llmrl"
    return Path(root)


def resolve_model(name: str | None) -> str:
    """A path or hub name that ``from_pretrained`` accepts, building a built-in preset on first use."""
    if not name:
        raise LlmrlError("no model given: pass --model NAME_OR_PATH (for example --model builtin:tiny)")
    if name.startswith(PREFIX):
        return str(ensure_builtin(name.removeprefix(PREFIX)))
    name = os.path.expanduser(name)
    if looks_like_path(name) and not Path(name).exists():
        raise LlmrlError(f"model folder not found: {name}")
    folder = Path(name)
    if folder.is_dir() and not any((folder / f).is_file() for f in ("config.json", "adapter_config.json")):
        raise LlmrlError(
            f"{name} is not a model folder: it has no config.json (expected a folder written by save_pretrained, "
            "a hub name, or builtin:tiny / builtin:small)"
        )
    return name


@functools.cache
def model_config(model: str | None, trust_remote_code: bool):
    """A model's config (``AutoConfig``), read once per process; None when there is none to read."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve_model(model), trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return None


def check_weights(name: str) -> None:
    """Refuse a local model folder that has a config but no weights (a save that stopped midway)."""
    folder = Path(name)
    if folder.is_dir() and not any(next(folder.glob(pattern), None) for pattern in WEIGHT_FILES):
        raise LlmrlError(
            f"model folder {name} has no weights (*.safetensors or *.bin beside its config.json): "
            "was its save interrupted? Point to a folder written by save_pretrained"
        )


def check_model_kind(name: str, policy: bool, trust_remote_code: bool) -> None:
    """Refuse a model that cannot be trained as asked: a LoRA adapter folder (no model of its own), or a
    sequence classifier (a reward model) where a method trains a policy (a causal LM)."""
    folder = Path(resolve_model(name))
    if (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        base = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path") or "its base"
        raise LlmrlError(
            f"{name} is a LoRA adapter (adapter_config.json), not a whole model: merge it into its base first "
            f"(llmrl merge {name} --output DIR, then --model DIR), or train from {base} with lora.enabled=true"
        )
    architectures = getattr(model_config(name, trust_remote_code), "architectures", None) or []
    if policy and architectures and all(a.endswith("ForSequenceClassification") for a in architectures):
        raise LlmrlError(
            f"{name} is a sequence-classification model ({', '.join(architectures)}: a reward model), and this "
            "method trains a policy (a causal LM): give the policy (e.g. runs/sft/final); a reward model serves "
            "as rewards=[reward_model:PATH]"
        )


WEIGHT_FILES = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "tiktoken.model", "vocab.txt")


def missing_tokenizer(name: str) -> str | None:
    """For a local model folder without tokenizer files, the sentence that says so (None otherwise)."""
    folder = Path(name)
    if folder.is_dir() and not any((folder / f).is_file() for f in TOKENIZER_FILES):
        return (
            f"model folder {name} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); save the tokenizer "
            "beside the model (tokenizer.save_pretrained(FOLDER))"
        )
    return None


def ensure_builtin(preset: str) -> Path:
    """Path of a built-in preset: the shipped folder of a pretrained one, else its cached copy, built on first
    use."""
    if preset in SHIPPED:
        if not (SHIPPED[preset] / "model.safetensors").is_file():
            raise LlmrlError(f"{SHIPPED[preset]} has no model.safetensors: this llmrl installation is incomplete")
        return SHIPPED[preset]
    target = cache_dir() / "models" / f"{preset}-v{RECIPE_VERSION}"
    if (target / "config.json").is_file():
        return target
    return write_builtin(preset, target)


def write_builtin(preset: str, target: Path) -> Path:
    """Build a preset in a staging folder beside ``target``, then rename it into place (never half-written).

    When another process finishes the same build first, its copy is kept and this one is dropped.
    """
    if preset not in PRESETS and preset not in SHIPPED:
        presets = ", ".join(PREFIX + p for p in (*PRESETS, *SHIPPED))
        raise LlmrlError(f"unknown built-in model '{PREFIX}{preset}'; presets: {presets}")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{preset}-", dir=target.parent))
    try:
        build_model(preset, staging)
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def build_model(preset: str, output_dir: str | Path) -> Path:
    """Write a preset into output_dir: a copy of a shipped one, else its tokenizer and randomly initialised model
    (deterministic)."""
    if preset in SHIPPED:
        shutil.copytree(ensure_builtin(preset), output_dir, dirs_exist_ok=True)
        return Path(output_dir)
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    sizes = dict(PRESETS[preset])
    tokenizer = build_tokenizer(vocab_size=sizes.pop("vocab_size"))
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in SPECIAL_TOKENS.items()}
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=ids["bos_token"],
        eos_token_id=ids["eos_token"],
        pad_token_id=ids["pad_token"],
        **sizes,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos_token"], eos_token_id=ids["eos_token"], pad_token_id=ids["pad_token"]
    )
    output_dir = Path(output_dir)
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a bar for a one-file write is noise
    try:
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    return output_dir


def build_tokenizer(vocab_size: int):
    """Byte-level BPE trained on the bundled sample texts, with llmrl's ChatML chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = [*SPECIAL_TOKENS.values(), "<|im_start|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_sample_texts(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, **SPECIAL_TOKENS, additional_special_tokens=["<|im_start|>"]
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _sample_texts():
    """Every string in the bundled sample data, in a fixed order."""
    for path in sorted(SAMPLES_DIR.glob("*/*.jsonl")):
        for line in path.read_text().splitlines():
            yield from _strings(json.loads(line))


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
