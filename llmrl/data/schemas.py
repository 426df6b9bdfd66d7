"""Recognise a dataset's schema from its columns and turn each row into one shape, whatever the source.

Every schema is read into an ``Example``: the prompt as a list of chat messages, plus the answer (SFT), the
chosen and rejected answers (preference), or nothing more (prompt-only), and the columns to keep (such as
``solution`` for reward functions). ``render`` then writes an Example in TRL's conversational formats (the
tokenizer always has a chat template: the model's, or llmrl's plain one).

Pure Python: nothing here imports torch, transformers or datasets.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmrl.errors import LlmrlError

Messages = list[dict[str, str]]


class DropRow(Exception):
    """A row that cannot be used (a tie, a missing answer); the reason is counted and reported."""


class BadRow(LlmrlError):
    """A row the schema cannot read (a null, a number where messages belong, an image): an error naming the
    row, or with ``data.skip_bad_rows`` a dropped row counted under ``reason``."""

    def __init__(self, reason: str, value: Any = ...):
        self.reason = reason
        super().__init__(reason if value is ... else f"{reason}, got {value!r:.80}")


@dataclass
class Example:
    """One row in a source-independent form."""

    prompt: Messages  # the conversation before the answer (empty for plain text)
    answer: Messages | None = None  # SFT: the assistant turn(s) to learn
    chosen: Messages | None = None  # preference: the better answer
    rejected: Messages | None = None  # preference: the worse answer
    text: str | None = None  # language-modeling text (the `text` schema)
    conversation: Messages | None = None  # chat data whose every assistant turn is trained on (`messages`)
    label: bool | None = None  # unpaired preference (KTO): whether `answer` is a good one
    keep: dict[str, Any] = field(default_factory=dict)  # other columns, passed through (solution, answer, ...)


@dataclass(frozen=True)
class Schema:
    name: str  # shown to the user, e.g. "question + response_j + response_k"
    columns: tuple[str, ...]  # required columns
    read: Callable[[dict], Example]  # row -> Example (raises DropRow to skip a row)


# ---------------------------------------------------------------------------------------------------------
# Reading values


def user(value, column: str) -> Messages:
    return [{"role": "user", "content": as_text(value, column)}]


def assistant(value, column: str) -> Messages:
    return [{"role": "assistant", "content": as_text(value, column)}]


def as_text(value, column: str) -> str:
    """A text column's value: a string (numbers are written out); null or a structure is a bad row."""
    if isinstance(value, str):
        return value
    if value is None:
        raise BadRow(f"column '{column}' is empty (null)")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise BadRow(f"column '{column}' must hold text", value)


# The names chat datasets give their roles (ShareGPT's human/gpt, Gemini's model, ...), read case-insensitively
ROLE_ALIASES = {
    "user": "user",
    "human": "user",
    "prompter": "user",  # OpenAssistant
    "assistant": "assistant",
    "gpt": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "chatbot": "assistant",
    "ai": "assistant",
    "system": "system",
    "developer": "system",  # OpenAI's name for system instructions
    "tool": "tool",  # a tool's answer, for templates that render tool calls
    "function": "tool",  # OpenAI's older name for it
}
TEXT_PART_TYPES = ("text", "input_text", "output_text")  # OpenAI's chat and responses formats


def as_messages(value, column: str, default_role: str, notes: dict | None = None) -> Messages:
    """A string becomes one message of default_role; a list must be messages: ``role``/``content`` (or
    ShareGPT's ``from``/``value``), content as text or a list of text parts. ``notes`` counts what was read
    in another form (role aliases, part lists), for the data report."""
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if value is None:
        raise BadRow(f"column '{column}' is empty (null)")
    if not isinstance(value, list):
        raise BadRow(f"column '{column}' must hold text or a list of {{role, content}} messages", value)
    return [read_message(m, f"message {i + 1} of column '{column}'", notes) for i, m in enumerate(value)]


def read_message(message, where: str, notes: dict | None) -> dict[str, str]:
    if isinstance(message, dict) and "role" in message and "content" in message:
        role, content = message["role"], message["content"]
    elif isinstance(message, dict) and "from" in message and "value" in message:  # ShareGPT
        role, content = message["from"], message["value"]
        count(notes, "ShareGPT from/value turns read as role/content")
    else:
        raise BadRow(f"{where} must be a {{role, content}} message", message)
    name = str(role).strip().lower()
    if name not in ROLE_ALIASES:
        raise BadRow(
            f"{where} has the role '{role}', which llmrl cannot place: roles are user, assistant, system and tool "
            f"(also read: {', '.join(r for r in ROLE_ALIASES if r not in ('user', 'assistant', 'system', 'tool'))})"
        )
    canonical = ROLE_ALIASES[name]
    if canonical != role:
        count(notes, f"role '{role}' read as '{canonical}'")
    return {"role": canonical, "content": message_text(content, where, notes)}


def message_text(content, where: str, notes: dict | None) -> str:
    """A message's content as text: a string, null (empty), or a list of parts whose text parts are joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return as_text(content, where)
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        kind = part.get("type", "text") if isinstance(part, dict) else type(part).__name__
        if kind not in TEXT_PART_TYPES or not isinstance(part.get("text"), str):
            raise BadRow(
                f"{where} has a '{kind}' part: llmrl trains on text (parts of type {', '.join(TEXT_PART_TYPES)})"
            )
        texts.append(part["text"])
    count(notes, "content given as a list of text parts, joined")
    return "\n".join(texts)


def count(notes: dict | None, note: str) -> None:
    if notes is not None:
        notes[note] = notes.get(note, 0) + 1


def split_last_turn(messages: Messages, column: str) -> tuple[Messages, Messages]:
    """(conversation before the last assistant turn, that turn)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "assistant":
            return messages[:i], messages[i : i + 1]
    raise DropRow(f"no assistant turn in '{column}'")


def common_prefix(chosen: Messages, rejected: Messages) -> int:
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    return n


HH_TURN = re.compile(r"\n\n(Human|Assistant):[ \t]?")


def parse_hh(transcript: str) -> Messages:
    """Anthropic HH transcripts ("\\n\\nHuman: ...\\n\\nAssistant: ...") as messages; a transcript that
    ends with an empty "Assistant:" (a prompt awaiting its answer, as Nectar's) ends with the user's turn."""
    parts = HH_TURN.split("\n\n" + transcript.lstrip("\n"))  # parts[0] is whatever came before the first turn
    roles = {"Human": "user", "Assistant": "assistant"}
    messages = [{"role": roles[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts) - 1, 2)]
    if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages


def is_hh(value) -> bool:
    return isinstance(value, str) and bool(re.match(r"\s*(\n\n)?Human: ", value)) and "\n\nAssistant:" in value


def prompt_messages(value, column: str, notes: dict | None = None) -> Messages:
    """A prompt column's value as messages: a string is a user message, or the turns of an HH transcript."""
    if is_hh(value):
        count(notes, f"'{column}' read as an HH transcript (Human:/Assistant: turns)")
        return parse_hh(value)
    return as_messages(value, column, "user", notes)


GSM8K_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.S)


def gsm8k_solution(answer: str) -> str | None:
    """The final answer after '####' in a GSM8K-style worked answer, without thousands separators."""
    match = GSM8K_ANSWER.search(answer or "")
    return match.group(1).replace(",", "").strip() if match else None


# ---------------------------------------------------------------------------------------------------------
# Schemas: each reads one row into an Example. Order matters: the first whose columns are present wins.


def read_conversation(column: str) -> Callable[[dict], Example]:
    """Chat data (``messages``, or ShareGPT's ``conversations``): every assistant turn is trained on."""

    def read(row) -> Example:
        messages = as_messages(row[column], column, "user")
        prompt, last = split_last_turn(messages, column)
        return Example(prompt=prompt, answer=last, conversation=messages)

    return read


def capybara_messages(value) -> Messages:
    """Capybara's ``conversation``: a list of ``{input, output}`` turns, a user message and its answer each."""
    if not isinstance(value, list) or not all(isinstance(t, dict) and "input" in t for t in value):
        raise BadRow("column 'conversation' must be a list of {input, output} turns", value)
    messages = []
    for turn in value:
        messages += user(turn["input"], "conversation")
        if turn.get("output") is not None:
            messages += assistant(turn["output"], "conversation")
    return messages


def read_capybara(row) -> Example:
    messages = capybara_messages(row["conversation"])
    prompt, last = split_last_turn(messages, "conversation")
    return Example(prompt=prompt, answer=last, conversation=messages)


def read_prompt_answer(answer_column: str) -> Callable[[dict], Example]:
    def read(row) -> Example:
        prompt = prompt_messages(row["prompt"], "prompt")
        answer = as_messages(row[answer_column], answer_column, "assistant")
        if len(answer) > len(prompt) and answer[: len(prompt)] == prompt:  # a whole conversation beside its prompt
            answer = answer[len(prompt) :]
        return Example(prompt=prompt, answer=answer)

    return read


def read_desirable(row) -> Example:
    """KTO's unpaired rows for SFT: the desirable answers are learned, the undesirable ones dropped (counted)."""
    example = read_unpaired(row)
    if not example.label:
        raise DropRow("an undesirable answer (label false): SFT learns the desirable ones only")
    return example


def read_question_answer(answer_column: str, question_column: str = "question") -> Callable[[dict], Example]:
    def read(row) -> Example:
        question = user(row[question_column], question_column)
        return Example(prompt=question, answer=assistant(row[answer_column], answer_column))

    return read


def instruction_prompt(instruction_column: str, extra_column: str | None) -> Callable[[dict], Messages]:
    """Alpaca's and Dolly's prompt: the instruction, then its ``input`` (Alpaca) or ``context`` passage (Dolly)
    as a paragraph of its own when there is one."""

    def prompt(row) -> Messages:
        text = as_text(row[instruction_column], instruction_column)
        extra = row.get(extra_column) if extra_column else None
        if extra is not None and as_text(extra, extra_column).strip():
            text = f"{text}\n\n{as_text(extra, extra_column)}"
        return [{"role": "user", "content": text}]

    return prompt


def read_instruction(extra_column: str | None, answer_column: str | None, instruction_column: str = "instruction"):
    """Alpaca (``instruction``, ``input``, ``output``) and Dolly (``instruction``, ``context``, ``response``)."""
    prompt = instruction_prompt(instruction_column, extra_column)

    def read(row) -> Example:
        answer = assistant(row[answer_column], answer_column) if answer_column else None
        return Example(prompt=prompt(row), answer=answer)

    return read


METAMATH_ANSWER = re.compile(r"The answer is:?\s*(.+?)\s*$", re.S)


def read_metamath(row) -> Example:
    """MetaMathQA (``query``, ``response``): the final answer after 'The answer is:' becomes ``solution``."""
    response = row.get("response")
    match = METAMATH_ANSWER.search(response) if isinstance(response, str) else None
    keep = {"solution": match.group(1).rstrip(".")} if match else {}
    answer = assistant(response, "response") if response is not None else None
    return Example(prompt=user(row["query"], "query"), answer=answer, keep=keep)


def read_text(row) -> Example:
    return Example(prompt=[], text=as_text(row["text"], "text"))


def preference(prompt: Messages, chosen: Messages, rejected: Messages) -> Example:
    return Example(prompt=prompt, chosen=chosen, rejected=rejected, answer=chosen)


def read_preference(row) -> Example:
    """prompt + chosen + rejected, or chosen + rejected holding whole conversations (implicit prompt)."""
    if is_hh(row["chosen"]) and is_hh(row["rejected"]):
        chosen, rejected = parse_hh(row["chosen"]), parse_hh(row["rejected"])
    else:
        chosen = as_messages(row["chosen"], "chosen", "assistant")
        rejected = as_messages(row["rejected"], "rejected", "assistant")
    prompt = prompt_messages(row["prompt"], "prompt") if row.get("prompt") else []
    shared = common_prefix(chosen, rejected)
    if shared and not prompt:  # implicit prompt: the turns both conversations share
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    elif prompt and chosen[: len(prompt)] == prompt and rejected[: len(prompt)] == prompt:
        chosen, rejected = chosen[len(prompt) :], rejected[len(prompt) :]  # full conversations beside a prompt
    if not chosen or not rejected:
        raise DropRow("chosen and rejected are identical")
    if not prompt:
        raise DropRow("no prompt")
    return preference(prompt, chosen, rejected)


def read_orca(row) -> Example:
    """Orca DPO pairs (``system``, ``question``, ``chosen``, ``rejected``); the system column, as in every
    schema, becomes the system message."""
    chosen, rejected = assistant(row["chosen"], "chosen"), assistant(row["rejected"], "rejected")
    if chosen == rejected:
        raise DropRow("chosen and rejected are identical")
    return preference(user(row["question"], "question"), chosen, rejected)


def read_response_j_k(row) -> Example:
    """Stack Exchange paired: response_j is the preferred answer to question."""
    chosen, rejected = assistant(row["response_j"], "response_j"), assistant(row["response_k"], "response_k")
    return preference(user(row["question"], "question"), chosen, rejected)


def read_helpsteer3(row) -> Example:
    """HelpSteer3 preference: overall_preference < 0 prefers response1, > 0 response2, 0 is a tie."""
    value = row["overall_preference"]
    if value is None:
        raise DropRow("no overall_preference (null)")
    if value == 0:
        raise DropRow("tie (overall_preference = 0)")
    first, second = assistant(row["response1"], "response1"), assistant(row["response2"], "response2")
    chosen, rejected = (first, second) if value < 0 else (second, first)
    return preference(as_messages(row["context"], "context", "user"), chosen, rejected)


def best_and_worst(answers: list[tuple[float, Any]], column: str) -> tuple[Messages, Messages]:
    """(best, worst) of (score, answer text) pairs, higher scores better; a tie of all is dropped."""
    scored = [(score, text) for score, text in answers if score is not None and text is not None]
    if len(scored) < 2:
        raise DropRow(f"fewer than two scored answers in '{column}'")
    best, worst = max(scored, key=lambda a: a[0]), min(scored, key=lambda a: a[0])
    if best[0] == worst[0]:
        raise DropRow(f"every answer in '{column}' has the same score")
    return assistant(best[1], column), assistant(worst[1], column)


def answer_list(value, column: str, text_key: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(a, dict) and text_key in a for a in value):
        raise BadRow(f"column '{column}' must be a list of {{{text_key}, ...}} answers", value)
    return value


def read_ultrafeedback_raw(row) -> Example:
    """UltraFeedback as released (``instruction``, rated ``completions``): the best answer by ``overall_score``
    (else ``fine-grained_score``) against the worst."""
    answers = [
        (a.get("overall_score", a.get("fine-grained_score")), a["response"])
        for a in answer_list(row["completions"], "completions", "response")
    ]
    chosen, rejected = best_and_worst(answers, "completions")
    return preference(user(row["instruction"], "instruction"), chosen, rejected)


def read_nectar(row) -> Example:
    """Nectar (``prompt`` as an HH transcript, ``answers`` ranked 1 = best): the best against the worst."""
    ranked = answer_list(row["answers"], "answers", "answer")
    answers = [(-a["rank"] if a.get("rank") is not None else None, a["answer"]) for a in ranked]
    chosen, rejected = best_and_worst(answers, "answers")
    return preference(prompt_messages(row["prompt"], "prompt"), chosen, rejected)


def read_pku(row) -> Example:
    """PKU-SafeRLHF (``prompt``, ``response_0``, ``response_1``, ``better_response_id``)."""
    better = row["better_response_id"]
    if better not in (0, 1):
        raise BadRow("column 'better_response_id' must be 0 or 1", better)
    answers = [assistant(row[f"response_{i}"], f"response_{i}") for i in (0, 1)]
    return preference(prompt_messages(row["prompt"], "prompt"), answers[better], answers[1 - better])


def read_shp(row) -> Example:
    """Stanford Human Preferences (``history``, ``human_ref_A``, ``human_ref_B``, ``labels``: 1 when A is
    preferred)."""
    label = row["labels"]
    if label not in (0, 1):
        raise BadRow("column 'labels' must be 0 or 1 (1: human_ref_A is preferred)", label)
    a, b = assistant(row["human_ref_A"], "human_ref_A"), assistant(row["human_ref_B"], "human_ref_B")
    chosen, rejected = (a, b) if label == 1 else (b, a)
    return preference(user(row["history"], "history"), chosen, rejected)


def read_unpaired(row) -> Example:
    """KTO's unpaired form: one answer and whether it is desirable."""
    label = row["label"]
    if isinstance(label, str) and label.strip().lower() in ("true", "false", "1", "0"):
        label = label.strip().lower() in ("true", "1")
    if not isinstance(label, (bool, int)) or label not in (0, 1):
        raise BadRow("column 'label' must be true or false (is the answer desirable?)", label)
    prompt = prompt_messages(row["prompt"], "prompt")
    return Example(prompt=prompt, answer=as_messages(row["completion"], "completion", "assistant"), label=bool(label))


def read_prompt_only(column: str) -> Callable[[dict], Example]:
    def read(row) -> Example:
        if column == "conversation":
            messages = capybara_messages(row[column])
        else:
            messages = prompt_messages(row[column], column)
        if messages and messages[-1]["role"] == "assistant":  # a conversation that ends in an answer
            messages, _ = split_last_turn(messages, column)
        return Example(prompt=messages)

    return read


def read_gsm8k_prompt(row) -> Example:
    solution = gsm8k_solution(row["answer"]) if isinstance(row.get("answer"), str) else None
    keep = {"solution": solution} if solution is not None else {}
    return Example(prompt=user(row["question"], "question"), keep=keep)


PREFERENCE_SCHEMAS = [
    Schema("prompt + chosen + rejected", ("prompt", "chosen", "rejected"), read_preference),
    Schema("Orca pairs: question + chosen + rejected (+ system)", ("question", "chosen", "rejected"), read_orca),
    Schema("chosen + rejected (implicit prompt or HH transcripts)", ("chosen", "rejected"), read_preference),
    Schema("question + response_j + response_k", ("question", "response_j", "response_k"), read_response_j_k),
    Schema(
        "HelpSteer3: context + response1 + response2 + overall_preference",
        ("context", "response1", "response2", "overall_preference"),
        read_helpsteer3,
    ),
    Schema(
        "UltraFeedback (raw): instruction + rated completions", ("instruction", "completions"), read_ultrafeedback_raw
    ),
    Schema("Nectar: prompt + ranked answers", ("prompt", "answers"), read_nectar),
    Schema(
        "PKU-SafeRLHF: prompt + response_0 + response_1 + better_response_id",
        ("prompt", "response_0", "response_1", "better_response_id"),
        read_pku,
    ),
    Schema(
        "SHP: history + human_ref_A + human_ref_B + labels",
        ("history", "human_ref_A", "human_ref_B", "labels"),
        read_shp,
    ),
]
UNPAIRED = Schema("prompt + completion + label (KTO, unpaired)", ("prompt", "completion", "label"), read_unpaired)
SCHEMAS = {
    "sft": [
        Schema("messages", ("messages",), read_conversation("messages")),
        Schema("conversations (ShareGPT)", ("conversations",), read_conversation("conversations")),
        Schema("Capybara: conversation of input/output turns", ("conversation",), read_capybara),
        Schema("prompt + completion + label (KTO: its desirable answers)", UNPAIRED.columns, read_desirable),
        Schema(
            "prompt + input + completion (Alpaca, mapped)",
            ("prompt", "input", "completion"),
            read_instruction("input", "completion", "prompt"),
        ),  # fmt: skip
        Schema("prompt + completion", ("prompt", "completion"), read_prompt_answer("completion")),
        Schema("prompt + response", ("prompt", "response"), read_prompt_answer("response")),
        Schema(
            "Alpaca: instruction + input + output",
            ("instruction", "input", "output"),
            read_instruction("input", "output"),
        ),
        Schema(
            "Dolly: instruction + context + response",
            ("instruction", "context", "response"),
            read_instruction("context", "response"),
        ),  # fmt: skip
        Schema("instruction + output", ("instruction", "output"), read_instruction(None, "output")),
        Schema("instruction + response", ("instruction", "response"), read_instruction(None, "response")),
        Schema("MetaMathQA: query + response", ("query", "response"), read_metamath),
        Schema("NuminaMath: problem + solution", ("problem", "solution"), read_question_answer("solution", "problem")),
        Schema("question + response_j", ("question", "response_j"), read_question_answer("response_j")),
        Schema("prompt + chosen", ("prompt", "chosen"), read_prompt_answer("chosen")),
        Schema("question + answer", ("question", "answer"), read_question_answer("answer")),
        Schema("text", ("text",), read_text),
        *PREFERENCE_SCHEMAS[1:],  # the chosen answer of any other preference data
    ],
    "preference": PREFERENCE_SCHEMAS,
    "kto": [UNPAIRED, *PREFERENCE_SCHEMAS],
    "prompt": [
        Schema("question + answer (GSM8K: solution from '#### N')", ("question", "answer"), read_gsm8k_prompt),
        Schema("MetaMathQA: query (solution from 'The answer is: N')", ("query",), read_metamath),
        Schema("Alpaca: instruction + input", ("instruction", "input"), read_instruction("input", None)),
        Schema("Dolly: instruction + context", ("instruction", "context"), read_instruction("context", None)),
        Schema("instruction", ("instruction",), read_instruction(None, None)),
        Schema("prompt", ("prompt",), read_prompt_only("prompt")),
        Schema("question", ("question",), read_prompt_only("question")),
        Schema("problem (NuminaMath)", ("problem",), read_prompt_only("problem")),
        Schema("context", ("context",), read_prompt_only("context")),
        Schema("messages", ("messages",), read_prompt_only("messages")),
        Schema("conversations (ShareGPT)", ("conversations",), read_prompt_only("conversations")),
        Schema("Capybara: conversation", ("conversation",), read_prompt_only("conversation")),
        Schema("SHP: history", ("history",), read_prompt_only("history")),
        Schema("chosen + rejected (prompt part)", ("chosen", "rejected"), read_preference),
    ],
}
# Text columns a schema may leave unread: said in the data report when one is there and unread (not silently)
NOTICED = ("input", "context", "instruction", "history", "query", "problem", "question", "prompt")
# Columns that hold a conversation's text, not data for reward functions: prompt-only data drops them
CONSUMED = {
    "prompt", "question", "context", "messages", "conversations", "conversation", "chosen", "rejected",
    "instruction", "input", "history", "query", "problem", "system", "completions", "answers",
}  # fmt: skip


def other_schema(row: dict, kind: str, schema: Schema) -> Schema | None:
    """Another schema of ``kind`` whose columns all have values in ``row`` (files that mix two schemas)."""
    for other in SCHEMAS[kind]:
        if other is not schema and all(row.get(c) is not None for c in other.columns):
            return other
    return None


def detect(columns: list[str], kind: str) -> Schema:
    """The first schema of ``kind`` whose columns are all present, or an error listing what is accepted."""
    for schema in SCHEMAS[kind]:
        if all(c in columns for c in schema.columns):
            return schema
    accepted = "; ".join(s.name for s in SCHEMAS[kind])
    unpaired = all(c in columns for c in UNPAIRED.columns)
    hint = (
        "; prompt + completion + label is unpaired data: it serves kto, and sft (its desirable answers)"
        if unpaired
        else ""
    )
    raise LlmrlError(
        f"no {kind} schema matches the columns [{', '.join(columns)}]; accepted: {accepted}{hint}; "
        "map other names with --set data.columns.prompt=COLUMN (likewise completion, chosen, rejected, ...)"
    )


def unread_columns(columns: list[str], schema: Schema, kind: str) -> list[str]:
    """The text columns (``NOTICED``) that ``schema`` leaves unread, for the data report: prompt-only data
    keeps every other column for the reward functions, so none is unread there."""
    if kind == "prompt":
        return []
    return [c for c in NOTICED if c in columns and c not in schema.columns]


def read_row(schema: Schema, row: dict, kind: str, notes: dict | None = None) -> Example:
    """One row read by ``schema``; message lists in its columns are first read into role/content form, with
    what that changed counted in ``notes``. A ``system`` column, in any schema, becomes the system message."""
    for column in (*schema.columns, "prompt"):
        if isinstance(row.get(column), list) and column not in ("completions", "answers", "conversation"):
            row = {**row, column: as_messages(row[column], column, "user", notes)}
    example = schema.read(row)
    system = row.get("system")
    if isinstance(system, str) and system.strip() and not (example.prompt and example.prompt[0]["role"] == "system"):
        example.prompt = [{"role": "system", "content": system}, *example.prompt]
        if example.conversation:
            example.conversation = [{"role": "system", "content": system}, *example.conversation]
        count(notes, "the 'system' column read as the system message")
    if kind == "prompt":
        kept = {k: v for k, v in row.items() if k not in CONSUMED and k not in schema.columns}
        if schema.read is read_gsm8k_prompt:
            kept["answer"] = row["answer"]
        example.keep = {**kept, **example.keep}
    return example


# ---------------------------------------------------------------------------------------------------------
# Writing rows in TRL's formats


def join_system_messages(messages: Messages, notes: dict | None = None) -> Messages:
    """For a chat template without a system role (Gemma 2, Mistral): each system message joined to the start
    of the user message after it, as Gemma 3's own template does (counted in ``notes``)."""
    joined, pending = [], []
    for message in messages:
        if message["role"] == "system":
            pending.append(message["content"])
            count(notes, "system message joined to the next user message (the chat template has no system role)")
        elif pending and message["role"] == "user":
            joined.append({**message, "content": "\n\n".join([*pending, message["content"]])})
            pending = []
        else:
            joined.append(message)
    if pending:  # a system message with no user message after it
        joined.append({"role": "user", "content": "\n\n".join(pending)})
    return joined


def render(example: Example, kind: str, system_role: bool = True, notes: dict | None = None) -> dict[str, Any]:
    """One row in TRL's conversational format for ``kind`` (the tokenizer always has a chat template: its
    own or llmrl's plain one, ``llmrl.chat_template``); system messages joined to the user's when the
    template has no system role."""
    if not system_role:
        example.prompt = join_system_messages(example.prompt, notes)
        if example.conversation:
            example.conversation = join_system_messages(example.conversation, notes)
    if kind == "sft":
        if example.text is not None:
            return {"text": example.text}
        if example.conversation:
            return {"messages": example.conversation}  # every assistant turn is trained on
        return {"prompt": example.prompt, "completion": example.answer}
    if kind == "kto" and example.label is not None:
        return {"prompt": example.prompt, "completion": example.answer, "label": example.label}
    if kind in ("preference", "kto"):
        return {"prompt": example.prompt, "chosen": example.chosen, "rejected": example.rejected}
    return {**example.keep, "prompt": example.prompt}
