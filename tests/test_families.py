"""The family fixtures of tests/families.py keep the conventions that FACTS states: special tokens, end-of-turn,
generation prompts, BOS, system messages; and each model loads and runs."""

import jinja2
import pytest
import torch
from families import FACTS, FAMILIES, SPECS, build_family
from transformers import AutoModelForCausalLM, AutoTokenizer

CHAT = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]
SYSTEM = {"role": "system", "content": "Answer with a number."}
GENERATION_PROMPT = {  # how each template's generation prompt ends
    "qwen2.5-base": "<|im_start|>assistant\n",
    "qwen2.5-instruct": "<|im_start|>assistant\n",
    "qwen3": "<|im_start|>assistant\n",
    "llama3": "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "gemma": "<start_of_turn>model\n",
    "mistral": "[/INST]",
}
TEMPLATED = [name for name in FAMILIES if FACTS[name].has_template]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("families")
    return {name: build_family(name, root / name) for name in FAMILIES}


@pytest.fixture(scope="module")
def tokenizers(folders) -> dict:
    return {name: AutoTokenizer.from_pretrained(folder) for name, folder in folders.items()}


def render(tokenizer, messages, **kwargs) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)


@pytest.mark.parametrize("name", FAMILIES)
def test_named_tokens_are_the_documented_ones(tokenizers, name):
    tokenizer, facts = tokenizers[name], FACTS[name]
    assert (tokenizer.eos_token, tokenizer.bos_token, tokenizer.pad_token) == (
        facts.eos_token,
        facts.bos_token,
        facts.pad_token,
    )
    assert (tokenizer.chat_template is not None) == facts.has_template


@pytest.mark.parametrize("name", FAMILIES)
def test_each_added_token_encodes_to_one_id(tokenizers, name):
    tokenizer, spec = tokenizers[name], SPECS[name]
    special = {added.content for added in tokenizer.added_tokens_decoder.values() if added.special}
    for token in spec["specials"]:
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1, token
        assert token in special, token
    for token in spec.get("plain", []):  # Qwen3's <think>: one id, but not special
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1, token
        assert token not in special, token
    assert set(spec["listed"]) <= set(tokenizer.all_special_tokens)


@pytest.mark.parametrize("name", FAMILIES)
def test_end_of_turn_follows_the_answer(tokenizers, name):
    tokenizer, facts = tokenizers[name], FACTS[name]
    if not facts.has_template:
        with pytest.raises(ValueError, match="chat template"):
            render(tokenizer, CHAT)
        return
    assert "4" + facts.end_of_turn in render(tokenizer, CHAT)


@pytest.mark.parametrize("name", TEMPLATED)
def test_generation_prompt_is_a_prefix_of_the_full_conversation(tokenizers, name):
    tokenizer = tokenizers[name]
    prompt = render(tokenizer, CHAT[:1], add_generation_prompt=True)
    assert prompt.endswith(GENERATION_PROMPT[name])
    assert render(tokenizer, CHAT).startswith(prompt)


def test_qwen3_without_thinking_prefills_an_empty_think_block(tokenizers):
    tokenizer = tokenizers["qwen3"]
    prompt = render(tokenizer, CHAT[:1], add_generation_prompt=True, enable_thinking=False)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert render(tokenizer, CHAT, enable_thinking=False).startswith(prompt)


def test_qwen3_keeps_reasoning_only_after_the_last_user_message(tokenizers):
    tokenizer = tokenizers["qwen3"]
    assert render(tokenizer, CHAT).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>\n")
    earlier = {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"}
    last = {"role": "assistant", "content": "5", "reasoning_content": "add one"}
    text = render(tokenizer, [CHAT[0], earlier, {"role": "user", "content": "And plus one?"}, last])
    assert "<|im_start|>assistant\n4<|im_end|>" in text  # earlier turns lose their reasoning
    assert text.endswith("<|im_start|>assistant\n<think>\nadd one\n</think>\n\n5<|im_end|>\n")
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert "<think>" in tokenizer.decode(ids, skip_special_tokens=True)  # not a special token, as shipped


@pytest.mark.parametrize("name", FAMILIES)
def test_bos_is_added_once(tokenizers, name):
    tokenizer, bos = tokenizers[name], FACTS[name].bos_token
    plain = tokenizer("hi")["input_ids"]
    if bos is None:
        assert tokenizer.convert_ids_to_tokens(plain) == tokenizer.tokenize("hi")  # nothing added
        return
    bos_id = tokenizer.convert_tokens_to_ids(bos)
    assert plain[0] == bos_id and plain.count(bos_id) == 1
    if FACTS[name].has_template:  # the template writes BOS itself
        ids = tokenizer(render(tokenizer, CHAT), add_special_tokens=False)["input_ids"]
        assert ids[0] == bos_id and ids.count(bos_id) == 1


@pytest.mark.parametrize("name", TEMPLATED)
def test_system_message(tokenizers, name):
    tokenizer = tokenizers[name]
    if not FACTS[name].system_role:  # Gemma says so; Mistral's turn-order check fires first, as in its template
        message = "System role not supported" if name == "gemma" else "roles must alternate"
        with pytest.raises(jinja2.exceptions.TemplateError, match=message):
            render(tokenizer, [SYSTEM, *CHAT])
        return
    text = render(tokenizer, [SYSTEM, *CHAT])
    assert SYSTEM["content"] in text and "You are Qwen" not in text
    default_system = "You are Qwen" in render(tokenizer, CHAT)
    assert default_system == name.startswith("qwen2.5")


@pytest.mark.parametrize("name", FAMILIES)
def test_model_runs_and_agrees_with_its_tokenizer(folders, tokenizers, name):
    tokenizer, facts = tokenizers[name], FACTS[name]
    model = AutoModelForCausalLM.from_pretrained(folders[name])
    assert type(model).__name__ == SPECS[name]["architecture"]
    logits = model(torch.randint(0, len(tokenizer), (2, 5))).logits
    assert logits.shape == (2, 5, len(tokenizer)) and torch.isfinite(logits).all()
    eos = model.generation_config.eos_token_id
    eos = eos if isinstance(eos, list) else [eos]
    assert tokenizer.convert_ids_to_tokens(eos) == list(facts.generation_eos)
    assert model.config.pad_token_id == tokenizer.pad_token_id


def test_builds_are_deterministic(folders, tmp_path):
    for name in ("qwen3", "gemma"):
        again = build_family(name, tmp_path / name)
        for file in ("model.safetensors", "tokenizer.json"):
            assert (again / file).read_bytes() == (folders[name] / file).read_bytes(), (name, file)
