"""Tiny offline models of the families users fine-tune: Qwen2.5 (base and instruct), Qwen3, Llama 3, Gemma 2,
Mistral and a template-less Llama-style base model.

Each is a random-weight model of the family's architecture with a small tokenizer trained in code, whose special
tokens, BOS/EOS/pad choices, chat template and generation config follow what the family ships. ``FACTS`` states
those conventions as the family documents them, so that conformance tests can compare llmrl's behaviour with
them::

    folder = build_family("llama3", tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert FACTS["llama3"].pad_token is None

Byte-level families (Qwen, Llama 3) get a byte-level BPE with their pre-tokenizer's split pattern and their special
tokens after the vocabulary, as they ship; SentencePiece families (Gemma, Mistral, Llama 2) get a BPE over
``▁``-words with byte fallback and their special tokens first. The templates are short rewrites of the real ones
(tool calls left out) that render system/user/assistant turns and the generation prompt the same way.
"""

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

FAMILIES: tuple[str, ...] = ("qwen2.5-base", "qwen2.5-instruct", "qwen3", "llama3", "gemma", "mistral", "no-template")


@dataclass(frozen=True)
class FamilyFacts:
    """What a family's documentation says; tests compare llmrl's behaviour against these."""

    end_of_turn: str | None  # the token that ends an assistant turn in the template (None: no template)
    eos_token: str  # tokenizer.eos_token
    bos_token: str | None  # the BOS the model expects at the start of a sequence (None: the family uses none)
    pad_token: str | None  # tokenizer.pad_token as shipped (None: no pad token)
    system_role: bool  # whether the template accepts a system message
    has_template: bool
    generation_eos: tuple[str, ...]  # generation_config.eos_token_id, as tokens: where generate() stops by default


FACTS: dict[str, FamilyFacts] = {
    "qwen2.5-base": FamilyFacts(
        end_of_turn="<|im_end|>",
        eos_token="<|endoftext|>",
        bos_token=None,
        pad_token="<|endoftext|>",
        system_role=True,
        has_template=True,
        generation_eos=("<|endoftext|>",),
    ),
    "qwen2.5-instruct": FamilyFacts(
        end_of_turn="<|im_end|>",
        eos_token="<|im_end|>",
        bos_token=None,
        pad_token="<|endoftext|>",
        system_role=True,
        has_template=True,
        generation_eos=("<|im_end|>", "<|endoftext|>"),
    ),
    "qwen3": FamilyFacts(
        end_of_turn="<|im_end|>",
        eos_token="<|im_end|>",
        bos_token=None,
        pad_token="<|endoftext|>",
        system_role=True,
        has_template=True,
        generation_eos=("<|im_end|>", "<|endoftext|>"),
    ),
    "llama3": FamilyFacts(
        end_of_turn="<|eot_id|>",
        eos_token="<|end_of_text|>",
        bos_token="<|begin_of_text|>",
        pad_token=None,
        system_role=True,
        has_template=True,
        generation_eos=("<|end_of_text|>",),
    ),
    "gemma": FamilyFacts(
        end_of_turn="<end_of_turn>",
        eos_token="<eos>",
        bos_token="<bos>",
        pad_token="<pad>",
        system_role=False,
        has_template=True,
        generation_eos=("<eos>", "<end_of_turn>"),
    ),
    "mistral": FamilyFacts(
        end_of_turn="</s>",
        eos_token="</s>",
        bos_token="<s>",
        pad_token=None,
        system_role=False,
        has_template=True,
        generation_eos=("</s>",),
    ),
    "no-template": FamilyFacts(
        end_of_turn=None,
        eos_token="</s>",
        bos_token="<s>",
        pad_token=None,
        system_role=False,
        has_template=False,
        generation_eos=("</s>",),
    ),
}

# --- chat templates: rewritten from each family's tokenizer_config.json, tools left out -------------------------

QWEN25_TEMPLATE = r"""
{%- if messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
{%- else %}
    {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if not (loop.first and message['role'] == 'system') %}
        {{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
""".strip()

# Assistant turns after the last user message keep their reasoning in a think block (an empty one when there is
# none); earlier ones lose it. enable_thinking=false pre-fills an empty think block in the generation prompt.
QWEN3_TEMPLATE = r"""
{%- if messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
{%- endif %}
{%- set ns = namespace(last_query_index=messages|length - 1) %}
{%- for message in messages %}
    {%- if message['role'] == 'user' %}
        {%- set ns.last_query_index = loop.index0 %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- set content = message['content'] if message['content'] is string else '' %}
    {%- if message['role'] == 'assistant' %}
        {%- set reasoning_content = '' %}
        {%- if message['reasoning_content'] is string %}
            {%- set reasoning_content = message['reasoning_content'] %}
        {%- elif '</think>' in content %}
            {%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
            {%- set content = content.split('</think>')[-1].lstrip('\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index and (loop.last or reasoning_content) %}
            {{- '<|im_start|>assistant\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' }}
            {{- content.lstrip('\n') + '<|im_end|>\n' }}
        {%- else %}
            {{- '<|im_start|>assistant\n' + content + '<|im_end|>\n' }}
        {%- endif %}
    {%- elif not (loop.first and message['role'] == 'system') %}
        {{- '<|im_start|>' + message['role'] + '\n' + content + '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}
""".strip()

# Llama 3 Instruct's template (3.0: no default system message), over a base tokenizer whose eos is <|end_of_text|>.
LLAMA3_TEMPLATE = r"""
{{- bos_token }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
""".strip()

GEMMA2_TEMPLATE = r"""
{{- bos_token }}
{%- if messages[0]['role'] == 'system' %}
    {{- raise_exception('System role not supported') }}
{%- endif %}
{%- for message in messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}
    {{- '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<start_of_turn>model\n' }}
{%- endif %}
""".strip()

# Mistral Instruct v0.1/v0.2: [INST] is plain text, the answer ends with eos, no generation prompt of its own.
MISTRAL_TEMPLATE = r"""
{{- bos_token }}
{%- for message in messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {{- '[INST] ' + message['content'] + ' [/INST]' }}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token }}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported!') }}
    {%- endif %}
{%- endfor %}
""".strip()

# --- how each family is built ---------------------------------------------------------------------------------

# GPT-4-style split patterns of the byte-level families: Qwen2 splits digits one by one, Llama 3 in runs of 1-3.
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPLIT = QWEN_SPLIT.replace(r"|\p{N}|", r"|\p{N}{1,3}|")
LLAMA3_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
]
SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)

# Per family:
#   kind: "byte-level" (special tokens after the trained vocabulary) or "sentencepiece" (special tokens first, then
#     the 256 byte-fallback tokens); prepend: whether the SentencePiece normalizer puts "▁" before the text.
#   specials: added tokens with special=True, in id order; listed: those the tokenizer_config lists as additional
#     special tokens (so in all_special_tokens; Llama 3 lists none); plain: added tokens with special=False.
#   tokens: the tokenizer's named tokens; tokenizer_class: what the family's tokenizer_config.json names, so that
#     AutoTokenizer takes the path it takes for the real model.
#   config, generation: overrides of the model config and the generation config, naming tokens for their ids.
SPECS = {
    "qwen2.5-base": dict(
        kind="byte-level",
        split=QWEN_SPLIT,
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        listed=["<|im_start|>", "<|im_end|>"],
        tokens=dict(eos_token="<|endoftext|>", pad_token="<|endoftext|>"),
        tokenizer_class="Qwen2Tokenizer",
        template=QWEN25_TEMPLATE,
        architecture="Qwen2ForCausalLM",
        config=dict(tie_word_embeddings=True, bos_token_id="<|endoftext|>"),  # as Qwen's config.json, unused
        generation=dict(
            bos_token_id="<|endoftext|>", eos_token_id="<|endoftext|>", do_sample=False, max_new_tokens=2048
        ),
    ),
    "qwen2.5-instruct": dict(
        kind="byte-level",
        split=QWEN_SPLIT,
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        listed=["<|im_start|>", "<|im_end|>"],
        tokens=dict(eos_token="<|im_end|>", pad_token="<|endoftext|>"),
        tokenizer_class="Qwen2Tokenizer",
        template=QWEN25_TEMPLATE,
        architecture="Qwen2ForCausalLM",
        config=dict(tie_word_embeddings=True, bos_token_id="<|endoftext|>"),
        generation=dict(
            bos_token_id="<|endoftext|>",
            eos_token_id=["<|im_end|>", "<|endoftext|>"],
            pad_token_id="<|endoftext|>",
            do_sample=True,
            temperature=0.7,
            top_p=0.8,
            top_k=20,
            repetition_penalty=1.1,
        ),
    ),
    "qwen3": dict(
        kind="byte-level",
        split=QWEN_SPLIT,
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        listed=["<|im_start|>", "<|im_end|>"],
        plain=["<think>", "</think>"],  # Qwen3 ships them as special=False: skip_special_tokens keeps them
        tokens=dict(eos_token="<|im_end|>", pad_token="<|endoftext|>"),
        tokenizer_class="Qwen2Tokenizer",
        template=QWEN3_TEMPLATE,
        architecture="Qwen3ForCausalLM",
        config=dict(tie_word_embeddings=True, bos_token_id="<|endoftext|>", head_dim=8),
        generation=dict(
            bos_token_id="<|endoftext|>",
            eos_token_id=["<|im_end|>", "<|endoftext|>"],
            pad_token_id="<|endoftext|>",
            do_sample=True,
            temperature=0.6,
            top_p=0.95,
            top_k=20,
        ),
    ),
    "llama3": dict(
        kind="byte-level",
        split=LLAMA3_SPLIT,
        specials=LLAMA3_SPECIALS,
        listed=[],
        tokens=dict(bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"),
        tokenizer_class="PreTrainedTokenizerFast",
        template=LLAMA3_TEMPLATE,
        architecture="LlamaForCausalLM",
        config=dict(tie_word_embeddings=True),  # as Llama 3.2 1B/3B
        generation=dict(
            bos_token_id="<|begin_of_text|>", eos_token_id="<|end_of_text|>", do_sample=True, temperature=0.6, top_p=0.9
        ),
    ),
    "gemma": dict(
        kind="sentencepiece",
        prepend=False,
        specials=["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"],
        listed=["<start_of_turn>", "<end_of_turn>"],
        tokens=dict(bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>"),
        tokenizer_class="GemmaTokenizer",
        template=GEMMA2_TEMPLATE,
        architecture="Gemma2ForCausalLM",
        config=dict(
            tie_word_embeddings=True,
            head_dim=8,
            query_pre_attn_scalar=8,
            sliding_window=64,
            attn_logit_softcapping=50.0,
            final_logit_softcapping=30.0,
            hidden_activation="gelu_pytorch_tanh",
        ),
        generation=dict(bos_token_id="<bos>", eos_token_id=["<eos>", "<end_of_turn>"], pad_token_id="<pad>"),
    ),
    "mistral": dict(
        kind="sentencepiece",
        prepend=True,
        specials=["<unk>", "<s>", "</s>"],
        listed=[],
        tokens=dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>"),
        tokenizer_class="LlamaTokenizer",
        template=MISTRAL_TEMPLATE,
        architecture="MistralForCausalLM",
        config=dict(tie_word_embeddings=False, sliding_window=None),
        generation=dict(bos_token_id="<s>", eos_token_id="</s>"),
    ),
    "no-template": dict(  # a Llama 2 base model
        kind="sentencepiece",
        prepend=True,
        specials=["<unk>", "<s>", "</s>"],
        listed=[],
        tokens=dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>"),
        tokenizer_class="LlamaTokenizer",
        template=None,
        architecture="LlamaForCausalLM",
        config=dict(tie_word_embeddings=False),
        generation=dict(bos_token_id="<s>", eos_token_id="</s>"),
    ),
}


def build_family(name: str, folder: Path) -> Path:
    """Write a tiny random-weight model of family ``name``, its tokenizer and generation config into ``folder``
    (deterministic); return ``folder``."""
    import torch
    import transformers
    from transformers import GenerationConfig

    if name not in SPECS:
        raise ValueError(f"unknown family {name!r}; families: {', '.join(FAMILIES)}")
    spec = SPECS[name]
    tokenizer = build_tokenizer(name)

    def with_ids(settings: dict) -> dict:  # the spec names tokens (eos_token_id="<eos>"): look up their ids
        return {
            key: tokenizer.convert_tokens_to_ids(value) if key.endswith("_token_id") else value
            for key, value in settings.items()
        }

    # the config names the tokenizer's bos/eos/pad (None where it has none), unless the family's config differs
    token_ids = {f"{kind}_id": tokenizer.convert_tokens_to_ids(token) for kind, token in spec["tokens"].items()}
    model_class = getattr(transformers, spec["architecture"])
    config = model_class.config_class(
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        **SMALL,
        **{"bos_token_id": None, "pad_token_id": None, **token_ids, **with_ids(spec["config"])},
    )
    torch.manual_seed(0)
    model = model_class(config)
    model.generation_config = GenerationConfig(**with_ids(spec["generation"]))
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    tokenizer_config = folder / "tokenizer_config.json"
    settings = json.loads(tokenizer_config.read_text())
    tokenizer_config.write_text(json.dumps({**settings, "tokenizer_class": spec["tokenizer_class"]}, indent=2))
    return folder


def build_tokenizer(name: str):
    """The family's tokenizer: a BPE trained on ``corpus()``, with its added tokens, BOS handling and template."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    spec = SPECS[name]
    if spec["kind"] == "byte-level":
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(spec["split"]), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        backend.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        trainer = trainers.BpeTrainer(vocab_size=480, initial_alphabet=alphabet, show_progress=False)
        backend.train_from_iterator(corpus(), trainer)
    else:
        backend = sentencepiece_bpe(spec["specials"], prepend=spec["prepend"])
    backend.add_tokens([AddedToken(token, normalized=False, special=True) for token in spec["specials"]])
    backend.add_tokens([AddedToken(token, normalized=False, special=False) for token in spec.get("plain", [])])
    bos = spec["tokens"].get("bos_token")
    if bos is not None:  # the tokenizer itself adds BOS to plain text, as these families' tokenizers do
        template = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, backend.token_to_id(bos))]
        )
        if spec["kind"] == "byte-level":
            template = processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
        backend.post_processor = template
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, **spec["tokens"], additional_special_tokens=spec["listed"]
    )
    tokenizer.chat_template = spec["template"]
    return tokenizer


def sentencepiece_bpe(specials: list[str], prepend: bool):
    """A SentencePiece-style BPE as Llama 2, Mistral and Gemma tokenizer.json files hold it: spaces become "▁"
    (with one put before the text when ``prepend``), unknown characters fall back to byte tokens <0x00>..<0xFF>."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always" if prepend else "never")
    trained.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=240, show_progress=False))
    pieces = json.loads(trained.to_str())["model"]
    vocab = [*specials, *(f"<0x{byte:02X}>" for byte in range(256))]
    vocab += [piece for piece, _ in sorted(pieces["vocab"].items(), key=lambda item: item[1]) if piece not in vocab]
    merges = [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge) for merge in pieces["merges"]]
    backend = Tokenizer(
        models.BPE({piece: i for i, piece in enumerate(vocab)}, merges, unk_token="<unk>", byte_fallback=True)
    )
    space = [normalizers.Replace(" ", "▁")]
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), *space] if prepend else space)
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    backend.decoder = decoders.Sequence([*steps, decoders.Strip(" ", 1, 0)] if prepend else steps)
    return backend


def corpus() -> list[str]:
    """The fixed training text: short English sentences, arithmetic questions with answers, chat phrases."""
    names = ["Alice", "Bob", "Carol", "Dave", "Eve", "Frank"]
    verbs = ["likes", "reads", "writes", "sees", "finds"]
    things = ["a book", "the cat", "a red apple", "the blue sky", "some water", "an old map"]
    sentences = [f"{n} {v} {t}." for n, v, t in itertools.product(names, verbs, things)]
    sums = [f"What is {a} + {b}? {a + b}" for a, b in itertools.product(range(10), repeat=2)]
    products = [f"What is {a} * {b}? The answer is {a * b}." for a, b in itertools.product(range(2, 8), repeat=2)]
    chat = [
        "You are a helpful assistant.",
        "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
        "Hello! How can I help you today?",
        "Let me think step by step.",
        "system user assistant model",
        "[INST] What is 2 + 2? [/INST] 4",
    ]
    return sentences + sums + products + chat
