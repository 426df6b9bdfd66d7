"""The chat-template preflight (llmrl.chat_template): a model without a template gets llmrl's plain one, saved
with what it trains; chat_template_kwargs become the template's defaults; a template that would train and
generate on different tokens, or whose answers end with no special token, is a clear error; markers that leave
the end of turn untrained are not used; the missing-EOS penalty knows the end of turn; data inspect shows it."""

import json
import logging

import pytest
from families import build_family
from transformers import AutoTokenizer
from typer.testing import CliRunner

from llmrl.chat_template import check_template, end_token_ids, marks_end_of_turn, prepare_tokenizer
from llmrl.cli import app
from llmrl.config import load_config
from llmrl.errors import LlmrlError
from llmrl.runner import run_training

CHATS = [
    {"messages": [{"role": "user", "content": f"What is {a} + 1?"}, {"role": "assistant", "content": str(a + 1)}]}
    for a in range(8)
]


@pytest.fixture
def chats(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in CHATS))
    return path


def test_a_model_without_a_chat_template_trains_with_llmrls_plain_one_and_keeps_it(tmp_path, chats, caplog):
    """No template: llmrl's plain Question/Answer template (BOS where the tokenizer adds one, each answer
    ending with eos), said in a warning, and saved with the trained model so later stages render the same."""
    model = build_family("no-template", tmp_path / "base")
    sets = ["model=" + str(model), f"dataset={chats}", "max_steps=1", f"output_dir={tmp_path / 'o'}"]
    with caplog.at_level(logging.WARNING, logger="llmrl"):
        final = run_training(load_config(sets=sets))
    assert any("has no chat template: using llmrl's plain template" in r.getMessage() for r in caplog.records)
    saved = AutoTokenizer.from_pretrained(final)
    conversation = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    assert saved.apply_chat_template(conversation, tokenize=False) == "<s>Question: 2+2?\n\nAnswer: 4</s>"
    prompt = saved.apply_chat_template(conversation[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<s>Question: 2+2?\n\nAnswer:"
    assert check_template(saved).plain and not check_template(saved).errors


def test_chat_template_kwargs_become_the_templates_defaults(tmp_path):
    """Qwen3 with enable_thinking false: the generation prompt holds the empty think block (answers without
    reasoning), in every renderer and in the saved template, which an explicit value still overrides."""
    tokenizer = AutoTokenizer.from_pretrained(build_family("qwen3", tmp_path / "qwen3"))
    question = [{"role": "user", "content": "2+2?"}]
    assert not tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True).endswith(
        "</think>\n\n"
    )
    prepare_tokenizer(tokenizer, {"enable_thinking": False})
    prepare_tokenizer(tokenizer, {"enable_thinking": False})  # preparing twice writes the default once
    assert tokenizer.chat_template.count("set enable_thinking") == 1
    prompt = tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    thinking = tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True, enable_thinking=True)
    assert thinking.endswith("<|im_start|>assistant\n")
    tokenizer.save_pretrained(tmp_path / "saved")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert reloaded.apply_chat_template(question, tokenize=False, add_generation_prompt=True) == prompt


BROKEN = {
    "drift": (  # the generation prompt ends with a newline the answer turn does not have
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n\n{% endif %}",
        "the generation prompt",
    ),
    "no end of turn": (  # answers end with plain text: generation could not stop at the end of a turn
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}",
        "no special token follows an answer",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_template_that_cannot_be_trained_on_is_an_error_before_anything_runs(case, tmp_path, chats):
    """An error naming what is wrong and how to give another template; a reward model (which neither trains
    on answer turns' ends nor generates) gets a warning only."""
    from llmrl.loading import load_tokenizer

    template, words = BROKEN[case]
    model = build_family("qwen2.5-instruct", tmp_path / "m")
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(model)
    sets = ["model=" + str(model), f"dataset={chats}", "max_steps=1", f"output_dir={tmp_path / 'o'}"]
    with pytest.raises(LlmrlError, match=f"cannot be trained on as it is: {words}.*sft.chat_template_path"):
        run_training(load_config(sets=sets))
    assert not (tmp_path / "o").exists()
    load_tokenizer(load_config(sets=[*sets, "method=reward"]))  # a warning, not an error


def test_generation_markers_that_leave_out_the_end_of_turn_are_not_used(tmp_path, chats):
    """A template whose {% generation %} markers end before the end-of-turn token would teach SFT never to
    end a turn: SFT trains on each conversation's last turn with its end of turn instead."""
    from llmrl.builtin import ensure_builtin
    from llmrl.methods import sft

    model = tmp_path / "m"
    tokenizer = AutoTokenizer.from_pretrained(ensure_builtin("tiny"))
    tokenizer.chat_template = tokenizer.chat_template.replace(
        "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}",
        "{% generation %}{{ message['content'] }}{% endgeneration %}{{ '<|im_end|>' }}",
    )
    assert not marks_end_of_turn(tokenizer)
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(ensure_builtin("tiny")).save_pretrained(model)
    tokenizer.save_pretrained(model)
    trainer = sft.build_trainer(load_config(sets=["model=" + str(model), f"dataset={chats}", f"output_dir={tmp_path}"]))
    batch = trainer.data_collator([trainer.train_dataset[0]])
    trained = [
        t for t, label in zip(batch["input_ids"][0].tolist(), batch["labels"][0].tolist(), strict=True) if label != -100
    ]
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in trained


def test_the_missing_eos_penalty_counts_the_end_of_turn_as_an_end(tmp_path):
    """Qwen2.5 base: an answer ending with <|im_end|> (not its eos <|endoftext|>) at the length limit ended
    its turn: no penalty; one cut without either is penalised."""
    from llmrl.trl_args import online_rewards

    model = build_family("qwen2.5-base", tmp_path / "m")
    tokenizer = AutoTokenizer.from_pretrained(model)
    sets = [
        "method=grpo",
        f"model={model}",
        "rewards=[length]",
        "rl.missing_eos_penalty=1",
        "rl.max_completion_length=3",
    ]
    functions, _ = online_rewards(load_config(sets=sets), tokenizer)
    turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert set(end_token_ids(tokenizer)) == {turn, tokenizer.eos_token_id}
    penalty = functions[-1](prompts=["q", "q"], completions=["a", "b"], completion_ids=[[5, 6, turn], [5, 6, 7]])
    assert penalty == [0.0, -1.0]


def test_data_inspect_shows_the_chat_template_check(tmp_path, chats):
    model = build_family("qwen2.5-base", tmp_path / "m")
    result = CliRunner().invoke(app, ["data", "inspect", "--dataset", str(chats), "--model", str(model)])
    assert result.exit_code == 0, result.output
    assert "end of turn <|im_end|> (not the eos token <|endoftext|>: generation stops at both)" in result.output
    gemma = build_family("gemma", tmp_path / "g")
    result = CliRunner().invoke(app, ["data", "inspect", "--dataset", str(chats), "--model", str(gemma)])
    assert "system message not accepted (joined to the first user message)" in result.output


def test_sft_chat_template_path_gives_a_base_model_another_template_and_its_tokens(tmp_path, chats):
    """sft.chat_template_path naming a tokenizer (here Qwen2.5-instruct-style) gives a template-less base model
    that template, the special tokens it uses (the embeddings grow to match) and its eos; a Jinja file gives
    the template alone. Every renderer uses it, and the preflight checks it."""
    base = build_family("no-template", tmp_path / "base")
    source = build_family("qwen2.5-instruct", tmp_path / "qwen")
    sets = ["model=" + str(base), f"dataset={chats}", "max_steps=1", f"output_dir={tmp_path / 'o'}"]
    final = run_training(load_config(sets=[*sets, f"sft.chat_template_path={source}"]))
    saved = AutoTokenizer.from_pretrained(final)
    assert "<|im_start|>" in saved.apply_chat_template(CHATS[0]["messages"], tokenize=False)
    assert saved.eos_token == "<|im_end|>" and len(saved.tokenize("<|im_end|>")) == 1
    assert "end of turn <|im_end|>" in (tmp_path / "o" / "train.log").read_text()
    template = tmp_path / "turns.jinja"  # with the base's own eos: a Jinja file adds no tokens
    template.write_text(
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{% if m['role'] == 'assistant' %}</s>{% endif %}"
        "\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
    )
    sets = [*sets[:3], f"output_dir={tmp_path / 'j'}", f"sft.chat_template_path={template}"]
    assert AutoTokenizer.from_pretrained(run_training(load_config(sets=sets))).chat_template == template.read_text()
