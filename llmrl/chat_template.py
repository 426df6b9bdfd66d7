"""The chat template: how a model's conversations are written as tokens, made ready and checked once per run.

Real templates differ in what matters to training. The token that ends an assistant turn is often not the
tokenizer's eos token (Qwen2.5 base: ``<|im_end|>`` against ``<|endoftext|>``), so generation must stop at
both; some refuse a system message (Gemma 2, Mistral); some write the BOS token themselves (Llama 3, Gemma);
a base model may have no template at all. ``prepare_tokenizer`` makes a loaded tokenizer ready (a pad token,
llmrl's plain template for a model without one, ``chat_template_kwargs`` as the template's defaults), and
``check_template`` is the preflight every run and ``llmrl data inspect`` show: the generation prompt is a
prefix of the rendered answer turn (else training and generation see different tokens), the end-of-turn
token is known, and the answer's trained tokens end with it.

Light to import: nothing here imports torch or transformers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from llmrl.errors import LlmrlError

logger = logging.getLogger("llmrl")
details = logging.getLogger("llmrl.details")  # the run log only

ANSWER = "llmrl-answer"  # the assistant's words in the conversations the checks render
QUESTION = [{"role": "user", "content": "What is 2 + 2?"}]
ANSWERED = [*QUESTION, {"role": "assistant", "content": ANSWER}]
SYSTEM = [{"role": "system", "content": "Be brief."}]


def plain_template(bos: bool) -> str:
    """llmrl's template for a model that has none: 'Question: ...' and 'Answer: ...' blocks, each answer
    ending with the eos token (inside ``{% generation %}``, so it is trained on), a system message as a
    paragraph of its own, and the BOS token first when the tokenizer adds one to plain text. The generation
    prompt ends at 'Answer:', without the space, which the answer's first token carries."""
    return (
        ("{{ bos_token }}" if bos else "") + "{%- for message in messages %}"
        "{%- if message['role'] == 'assistant' %}{{ 'Answer: ' }}"
        "{%- generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
        "{%- elif message['role'] == 'system' %}{{ message['content'] }}"
        "{%- else %}{{ 'Question: ' + message['content'] }}{% endif %}"
        "{%- if not loop.last %}{{ '\n\n' }}{% endif %}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{ '\n\nAnswer:' }}{% endif %}"
    )


def prepare_tokenizer(tokenizer, chat_template_kwargs: dict | None = None) -> bool:
    """Make ``tokenizer`` ready for llmrl, in place: the eos token as pad token when it has none, llmrl's plain
    template when it has no chat template, and ``chat_template_kwargs`` (e.g. ``enable_thinking: false``) as
    defaults written into the template, so that every renderer (TRL, llmrl, vLLM, the saved model) uses them.
    Returns whether the plain template was added."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    added = not tokenizer.chat_template
    if added:
        tokenizer.chat_template = plain_template(adds_bos(tokenizer))
    if chat_template_kwargs:
        defaults = "".join(
            f"{{%- if {name} is not defined %}}{{%- set {name} = {jinja_literal(value)} %}}{{%- endif %}}"
            for name, value in chat_template_kwargs.items()
        )
        templates = tokenizer.chat_template  # a text, or named texts (a default and a tool-use one)
        named = templates if isinstance(templates, dict) else {None: templates}
        named = {key: text if text.startswith(defaults) else defaults + text for key, text in named.items()}
        tokenizer.chat_template = named if isinstance(templates, dict) else named[None]
    return added


def jinja_literal(value) -> str:
    """A Python value as a Jinja expression (Jinja's true, false and none are lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return json.dumps(value)


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer starts plain text with its BOS token (Llama, Gemma, Mistral do; Qwen has none)."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a")["input_ids"][:1] == [bos]


def special_tokens(tokenizer) -> list[str]:
    """The tokenizer's special tokens, longest first."""
    added = [token.content for token in tokenizer.added_tokens_decoder.values() if token.special]
    return sorted(set(tokenizer.all_special_tokens) | set(added), key=len, reverse=True)


def render(tokenizer, messages, add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def end_of_turn(tokenizer) -> str | None:
    """The special token the chat template writes right after an assistant's answer, or None when none
    follows it."""
    try:
        text = render(tokenizer, ANSWERED)
    except Exception:
        return None
    after = text[text.rindex(ANSWER) + len(ANSWER) :].lstrip(" ")
    return next((token for token in special_tokens(tokenizer) if after.startswith(token)), None)


def accepts_system_messages(tokenizer) -> bool:
    """Whether the chat template renders a system message (Gemma 2's and Mistral's raise)."""
    try:
        render(tokenizer, [*SYSTEM, *QUESTION])
    except Exception:
        return False
    return True


def end_token_ids(tokenizer, generation_config=None) -> list[int]:
    """The tokens that end an answer, in one list for every generation llmrl runs or TRL runs for it: the
    tokenizer's eos token, those of the model's generation config, and the chat template's end of turn."""
    ends = getattr(generation_config, "eos_token_id", None)
    ends = [] if ends is None else [ends] if isinstance(ends, int) else list(ends)
    turn = end_of_turn(tokenizer)
    turn_id = tokenizer.convert_tokens_to_ids(turn) if turn else None
    return [t for t in dict.fromkeys([tokenizer.eos_token_id, *ends, turn_id]) if t is not None]


def marks_end_of_turn(tokenizer) -> bool:
    """Whether the template's ``{% generation %}`` markers (the tokens SFT trains on, when it has them) take in
    the end-of-turn token: else a model trained on the marked tokens never learns to end its turn."""
    turn = end_of_turn(tokenizer)
    encoded = tokenizer.apply_chat_template(ANSWERED, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    turn_id = tokenizer.convert_tokens_to_ids(turn) if turn else None
    return any(token == turn_id and marked for token, marked in zip(ids, mask, strict=True))


@dataclass
class TemplateCheck:
    """What the preflight found about a tokenizer's chat template."""

    eos_token: str | None = None
    end_of_turn: str | None = None
    system_role: bool = True
    plain: bool = False  # llmrl's plain template (the model had none)
    errors: list[str] = field(default_factory=list)  # training and generation would see different things
    warnings: list[str] = field(default_factory=list)  # probably not what the user meant; the run can be right

    def summary(self) -> str:
        """One line for the run log and ``llmrl data inspect``."""
        template = "llmrl's plain template (Question:/Answer:, the model has none)" if self.plain else "the model's"
        turn = self.end_of_turn or "unknown"
        if self.end_of_turn and self.end_of_turn != self.eos_token:
            turn += f" (not the eos token {self.eos_token}: generation stops at both)"
        system = "accepted" if self.system_role else "not accepted (joined to the first user message)"
        return f"chat template: {template}; end of turn {turn}; system message {system}"


def check_template(tokenizer) -> TemplateCheck:
    """The preflight of a prepared tokenizer's chat template (see the module's docstring)."""
    plain = str(tokenizer.chat_template).endswith(plain_template(adds_bos(tokenizer)))
    check = TemplateCheck(tokenizer.eos_token, end_of_turn(tokenizer), plain=plain)
    check.system_role = accepts_system_messages(tokenizer)
    try:
        prompt, full = render(tokenizer, QUESTION, add_generation_prompt=True), render(tokenizer, ANSWERED)
    except Exception as e:
        check.errors.append(f"it cannot render a user question and an answer ({type(e).__name__}: {e})")
        return check
    if not full.startswith(prompt):
        where = next(i for i, (a, b) in enumerate(zip(prompt, full, strict=False)) if a != b) if full else 0
        check.errors.append(
            f"the generation prompt {prompt[where:]!r:.60} is not how the answer turn begins ({full[where:]!r:.60}): "
            "training and generation would see different tokens"
        )
    elif ids_of(tokenizer, full)[: len(ids_of(tokenizer, prompt))] != ids_of(tokenizer, prompt):
        check.warnings.append(
            "the generation prompt's tokens are not a prefix of the answer turn's (tokens merge across the "
            "boundary): the answer is trained from where they diverge"
        )
    if check.end_of_turn is None:
        after = full[full.rindex(ANSWER) + len(ANSWER) :]
        check.errors.append(
            f"no special token follows an answer (it is followed by {after!r:.40}): generation could not stop at "
            "the end of a turn"
        )
    bos = tokenizer.bos_token_id
    if bos is not None and adds_bos(tokenizer):
        count = ids_of(tokenizer, full).count(bos)
        if count != 1:
            check.warnings.append(
                f"a rendered conversation holds the BOS token {tokenizer.bos_token} {count} times (1 expected)"
            )
    return check


def ids_of(tokenizer, text: str) -> list[int]:
    """Rendered text as tokens: the template wrote the special tokens it wants, so none are added."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def preflight(tokenizer, model_name: str, generates: bool, chat_template_kwargs: dict | None = None) -> TemplateCheck:
    """Prepare ``tokenizer`` and check its chat template, once per run: a failed check is an error when the
    run trains on or generates from the template's turns (``generates``), else a warning. The summary goes to
    the console when it says something a user of the model may not expect (an end of turn that is not the eos
    token, no system role, llmrl's plain template), else to the run log."""
    added = prepare_tokenizer(tokenizer, chat_template_kwargs)
    check = check_template(tokenizer)
    if added:
        logger.warning(
            "%s has no chat template: using llmrl's plain template (Question:/Answer: blocks, each answer ending "
            "with %s), which a model trained from it keeps; sft.chat_template_path gives another",
            model_name,
            tokenizer.eos_token,
        )
    problems = check.errors if generates else []
    if problems:
        raise LlmrlError(
            f"the chat template of {model_name} cannot be trained on as it is: {'; '.join(problems)}; give a "
            "template whose generation prompt begins the answer turn and whose answers end with a special token "
            "(sft.chat_template_path=FILE.jinja)"
        )
    for warning in check.warnings + (check.errors if not generates else []):
        logger.warning("chat template of %s: %s", model_name, warning)
    unusual = check.plain or not check.system_role or check.end_of_turn != tokenizer.eos_token
    (logger if unusual else details).info(check.summary())
    return check
