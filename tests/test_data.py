"""The data layer: sources, every schema normalized per method, filters and their counts, bad input."""

import json

import pytest
from helpers import tiny_train_args
from typer.testing import CliRunner

from llmrl.cli import app
from llmrl.config import load_config
from llmrl.data import BUILTIN_DATASETS, load_split, prepare_dataset
from llmrl.data.prepare import percentiles
from llmrl.data.sources import default_split
from llmrl.errors import LlmrlError

runner = CliRunner()


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


def S(text):
    return {"role": "system", "content": text}


@pytest.fixture(scope="module")
def chat_tokenizer(tiny_model_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_path)


@pytest.fixture
def prepare(tmp_path, chat_tokenizer):
    """Write rows to a JSONL file, prepare them for a kind, return (rows, report)."""

    def run(rows, kind, *sets):
        path = tmp_path / "rows.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        cfg = load_config(sets=[f"dataset={path}", "model=builtin:tiny", *sets])
        dataset, report = prepare_dataset(cfg, chat_tokenizer, kind)
        return dataset.to_list(), report

    return run


# ---------------------------------------------------------------------------------------------------------
# SFT schemas


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"messages": [S("Be brief."), U("2+2?"), A("4")]}, {"messages": [S("Be brief."), U("2+2?"), A("4")]}),
        ({"prompt": "2+2?", "completion": "4"}, {"prompt": [U("2+2?")], "completion": [A("4")]}),
        ({"prompt": [U("2+2?")], "completion": [A("4")]}, {"prompt": [U("2+2?")], "completion": [A("4")]}),
        ({"prompt": "2+2?", "response": "4"}, {"prompt": [U("2+2?")], "completion": [A("4")]}),
        ({"question": "2+2?", "response_j": "4", "response_k": "5"}, {"prompt": [U("2+2?")], "completion": [A("4")]}),
        ({"prompt": "2+2?", "chosen": "4"}, {"prompt": [U("2+2?")], "completion": [A("4")]}),
        ({"question": "2+2?", "answer": "2+2=4\n#### 4"}, {"prompt": [U("2+2?")], "completion": [A("2+2=4\n#### 4")]}),
        ({"text": "Once upon a time."}, {"text": "Once upon a time."}),
        (  # chosen/rejected conversations: the chosen answer is the target
            {"chosen": [U("2+2?"), A("4")], "rejected": [U("2+2?"), A("5")]},
            {"prompt": [U("2+2?")], "completion": [A("4")]},
        ),
    ],
    ids=[
        "messages",
        "prompt+completion",
        "prompt+completion-chat",
        "prompt+response",
        "question+response_j",
        "prompt+chosen",
        "question+answer",
        "text",
        "implicit-preference",
    ],
)
def test_sft_schemas(prepare, row, expected):
    rows, _ = prepare([row, row], "sft")
    assert rows == [expected, expected]


def test_chat_rows_without_an_answer_are_dropped_and_counted(prepare):
    rows, report = prepare([{"messages": [U("hi")]}, {"messages": [U("2+2?"), A("4")]}], "sft")
    assert len(rows) == 1
    assert report.dropped == {"no assistant turn in 'messages'": 1}
    assert report.counts[:2] == [("loaded", 2), ("normalized (messages)", 1)]


# ---------------------------------------------------------------------------------------------------------
# Preference schemas

PAIR = {"prompt": [U("2+2?")], "chosen": [A("4")], "rejected": [A("5")]}


@pytest.mark.parametrize(
    "row",
    [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        {"prompt": [U("2+2?")], "chosen": [A("4")], "rejected": [A("5")]},
        {"chosen": [U("2+2?"), A("4")], "rejected": [U("2+2?"), A("5")]},  # implicit prompt (UltraFeedback, trl-lib)
        {"prompt": "2+2?", "chosen": [U("2+2?"), A("4")], "rejected": [U("2+2?"), A("5")]},  # prompt and full turns
        {"question": "2+2?", "response_j": "4", "response_k": "5"},  # stack-exchange-paired
        {"chosen": "\n\nHuman: 2+2?\n\nAssistant: 4", "rejected": "\n\nHuman: 2+2?\n\nAssistant: 5"},  # Anthropic HH
        {"context": [U("2+2?")], "response1": "4", "response2": "5", "overall_preference": -2},  # HelpSteer3
        {"context": [U("2+2?")], "response1": "5", "response2": "4", "overall_preference": 1},
    ],
    ids=[
        "strings",
        "messages",
        "implicit",
        "prompt+conversations",
        "response_j_k",
        "hh",
        "helpsteer3-neg",
        "helpsteer3-pos",
    ],
)
def test_preference_schemas(prepare, row):
    rows, _ = prepare([row], "preference")
    assert rows == [PAIR]


def test_multi_turn_implicit_prompt_keeps_the_shared_turns(prepare):
    chosen = [U("hi"), A("hello"), U("2+2?"), A("4")]
    rejected = [U("hi"), A("hello"), U("2+2?"), A("5")]
    rows, _ = prepare([{"chosen": chosen, "rejected": rejected}], "preference")
    assert rows == [{"prompt": chosen[:3], "chosen": [A("4")], "rejected": [A("5")]}]


def test_hh_multi_turn_transcripts(prepare):
    chosen = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: 2+2?\n\nAssistant: 4"
    rejected = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: 2+2?\n\nAssistant: five"
    rows, _ = prepare([{"chosen": chosen, "rejected": rejected}], "preference")
    assert rows == [{"prompt": [U("hi"), A("hello"), U("2+2?")], "chosen": [A("4")], "rejected": [A("five")]}]


def test_helpsteer3_ties_are_dropped_and_language_filter(prepare):
    def row(preference, language):
        return {
            "context": [U("q")],
            "response1": "a",
            "response2": "b",
            "overall_preference": preference,
            "language": language,
        }

    data = [row(-1, "english"), row(0, "english"), row(3, "english"), row(-2, "german")]
    rows, report = prepare(data, "preference", "data.language=english")
    assert rows == [
        {"prompt": [U("q")], "chosen": [A("a")], "rejected": [A("b")]},
        {"prompt": [U("q")], "chosen": [A("b")], "rejected": [A("a")]},
    ]
    assert report.counts[:3] == [
        ("loaded", 4),
        ("language = english", 3),
        ("normalized (HelpSteer3: context + response1 + response2 + overall_preference)", 2),
    ]
    assert report.dropped == {"language is not 'english' (found: german (1))": 1, "tie (overall_preference = 0)": 1}


def test_identical_pairs_are_dropped(prepare):
    same = {"chosen": [U("q"), A("a")], "rejected": [U("q"), A("a")]}
    _, report = prepare([same, {"prompt": "q", "chosen": "a", "rejected": "b"}], "preference")
    assert report.dropped == {"chosen and rejected are identical": 1}


# ---------------------------------------------------------------------------------------------------------
# Prompt-only schemas


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"prompt": "2+2?", "solution": "4"}, {"prompt": [U("2+2?")], "solution": "4"}),
        ({"prompt": [S("s"), U("2+2?")], "answer": "4"}, {"prompt": [S("s"), U("2+2?")], "answer": "4"}),
        (
            {"question": "2+2?", "answer": "2+2=4\n#### 4"},
            {"prompt": [U("2+2?")], "answer": "2+2=4\n#### 4", "solution": "4"},
        ),  # GSM8K
        (
            {"question": "2+2?", "answer": "so #### 1,234"},
            {"prompt": [U("2+2?")], "answer": "so #### 1,234", "solution": "1234"},
        ),
        ({"question": "2+2?"}, {"prompt": [U("2+2?")]}),
        ({"context": [U("2+2?")], "domain": "math"}, {"prompt": [U("2+2?")], "domain": "math"}),
        ({"messages": [U("2+2?"), A("4")]}, {"prompt": [U("2+2?")]}),
        ({"prompt": "2+2?", "chosen": "4", "rejected": "5"}, {"prompt": [U("2+2?")]}),
        ({"chosen": [U("2+2?"), A("4")], "rejected": [U("2+2?"), A("5")]}, {"prompt": [U("2+2?")]}),
    ],
    ids=[
        "prompt+solution",
        "prompt-messages",
        "gsm8k",
        "gsm8k-thousands",
        "question",
        "context",
        "messages",
        "explicit-preference",
        "implicit-preference",
    ],
)
def test_prompt_schemas_keep_other_columns(prepare, row, expected):
    rows, _ = prepare([row], "prompt")
    assert rows == [expected]


# ---------------------------------------------------------------------------------------------------------
# Column mapping and schema errors


def test_column_mapping(prepare):
    rows, report = prepare(
        [{"instruction": "2+2?", "output": "4", "prompt": "ignored"}],
        "sft",
        "data.columns.prompt=instruction",
        "data.columns.completion=output",
    )
    assert rows == [{"prompt": [U("2+2?")], "completion": [A("4")]}]
    assert report.mapping == {"prompt": "instruction", "completion": "output"}


def test_mapping_to_a_missing_column(prepare):
    with pytest.raises(LlmrlError, match=r"data.columns.prompt=instr: no such column; the dataset's columns: a, b"):
        prepare([{"a": 1, "b": 2}], "sft", "data.columns.prompt=instr")


def test_columns_matching_no_schema_list_columns_and_schemas(prepare):
    with pytest.raises(LlmrlError) as error:
        prepare([{"foo": "x", "bar": "y"}], "preference")
    message = str(error.value)
    assert "no preference schema matches the columns [foo, bar]" in message
    assert "prompt + chosen + rejected" in message and "question + response_j + response_k" in message
    assert "--set data.columns.prompt=COLUMN" in message and "\n" not in message


def test_bad_message_lists(prepare):
    with pytest.raises(LlmrlError, match="row 1: message 1 of column 'messages' must be a {role, content} message"):
        prepare([{"messages": [{"speaker": "me"}]}], "sft")
    with pytest.raises(LlmrlError, match="row 1: column 'messages' must hold text or a list of {role, content}"):
        prepare([{"messages": 7}], "sft")


# ---------------------------------------------------------------------------------------------------------
# Real-world rows (issue 17): part lists, role aliases, ShareGPT, nulls, mixed schemas, language case


def test_content_as_a_list_of_text_parts_is_joined(prepare):
    parts = [{"type": "text", "text": "What is 2+2?"}, {"type": "input_text", "text": "Be brief."}]
    answer = [{"type": "output_text", "text": "4"}]
    rows, report = prepare([{"messages": [{"role": "user", "content": parts}, A(answer)]}], "sft")
    assert rows == [{"messages": [U("What is 2+2?\nBe brief."), A("4")]}]  # "4" stays text, not the number 4
    assert report.notes == {"content given as a list of text parts, joined": 2}
    rows, _ = prepare([{"prompt": [{"role": "user", "content": parts}], "chosen": "a", "rejected": "b"}], "preference")
    assert rows[0]["prompt"] == [U("What is 2+2?\nBe brief.")]
    rows, _ = prepare([{"prompt": [{"role": "user", "content": parts}]}], "prompt")
    assert rows == [{"prompt": [U("What is 2+2?\nBe brief.")]}]


@pytest.mark.parametrize(
    "part", [{"type": "image_url", "image_url": {"url": "x.png"}}, {"type": "input_audio", "input_audio": {}}]
)
def test_non_text_parts_are_refused_naming_the_row(prepare, part):
    good = {"messages": [U("hi"), A("hello")]}
    bad = {"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, part]}, A("a cat")]}
    with pytest.raises(LlmrlError) as error:
        prepare([good, bad], "sft")
    message = str(error.value)
    assert "row 2" in message and f"'{part['type']}' part" in message and "text" in message
    assert "data.skip_bad_rows=true" in message


def test_role_aliases_and_sharegpt_turns(prepare):
    aliased = {"messages": [{"role": "System", "content": "Be brief."}, {"role": "human", "content": "2+2?"}]}
    aliased["messages"].append({"role": "gpt", "content": "4"})
    rows, report = prepare([aliased], "sft")
    assert rows == [{"messages": [S("Be brief."), U("2+2?"), A("4")]}]
    assert report.notes == {"role 'System' read as 'system'": 1, "role 'human' read as 'user'": 1,
                            "role 'gpt' read as 'assistant'": 1}  # fmt: skip
    for role in ("model", "bot", "Assistant", "AI", "chatbot"):
        rows, _ = prepare([{"messages": [U("q"), {"role": role, "content": "a"}]}], "sft")
        assert rows == [{"messages": [U("q"), A("a")]}], role
    sharegpt = {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]}
    rows, report = prepare([sharegpt], "sft")
    assert rows == [{"messages": [U("2+2?"), A("4")]}] and report.schema == "conversations (ShareGPT)"
    rows, _ = prepare([sharegpt], "prompt")
    assert rows == [{"prompt": [U("2+2?")]}]


@pytest.mark.parametrize(
    "bad_row, words",
    [
        ({"messages": None}, ["column 'messages' is empty (null)"]),
        ({"prompt": "p", "completion": "c"}, ["another schema (prompt + completion)", "one file holds one schema"]),
        ({"messages": [U("q"), A(None)], "x": None}, None),  # a null content is an empty answer, not an error
    ],
    ids=["null", "mixed-schemas", "null-content"],
)
def test_a_bad_row_is_named_or_skipped_and_counted(prepare, bad_row, words):
    good = {"messages": [U("q"), A("a")]}
    if words is None:
        rows, _ = prepare([good, bad_row], "sft")
        assert rows[1] == {"messages": [U("q"), A("")]}
        return
    with pytest.raises(LlmrlError) as error:
        prepare([good, bad_row, good], "sft")
    message = str(error.value)
    assert "row 2:" in message and "rows read as messages" in message and "data.skip_bad_rows=true" in message
    assert all(word in message for word in words), message
    rows, report = prepare([good, bad_row, good], "sft", "data.skip_bad_rows=true")
    assert rows == [{"messages": [U("q"), A("a")]}] * 2
    assert list(report.dropped.values()) == [1] and "data.skip_bad_rows" in next(iter(report.dropped))


def test_null_text_columns_are_bad_rows(prepare):
    with pytest.raises(LlmrlError, match="row 1: column 'question' is empty"):
        prepare([{"question": None, "answer": "4"}], "sft")
    rows, _ = prepare([{"question": "2+2?", "answer": 4}], "sft")  # a number is written out
    assert rows == [{"prompt": [U("2+2?")], "completion": [A("4")]}]


def test_language_is_compared_without_case_and_drops_say_why(prepare):
    data = [{"prompt": "p", "completion": "c", "language": language} for language in ("English", "english ", "fr")]
    rows, report = prepare(data, "sft", "data.language=ENGLISH")
    assert len(rows) == 2
    assert report.dropped == {"language is not 'ENGLISH' (found: fr (1))": 1}
    with pytest.raises(LlmrlError, match=r"3 language is not 'de' \(found: English \(1\), english  \(1\), fr"):
        prepare(data, "sft", "data.language=de")


# ---------------------------------------------------------------------------------------------------------
# Public schemas read as they are (issue 30): each normalized for every kind of data it can serve

ALPACA = {"instruction": "Add 2 and 2.", "input": "Show the sum.", "output": "4"}
DOLLY = {
    "instruction": "Who wrote it?",
    "context": "Hamlet is by Shakespeare.",
    "response": "Shakespeare",
    "category": "qa",
}
METAMATH = {"query": "What is 2+2?", "response": "2+2=4. The answer is: 4", "type": "GSM_Rephrased"}
NUMINA = {"problem": "Find x if x+1=3.", "solution": "x = \\boxed{2}", "source": "amc"}
CAPYBARA = {"source": "s", "conversation": [{"input": "Hi", "output": "Hello"}, {"input": "2+2?", "output": "4"}]}
ORCA = {"system": "You are helpful.", "question": "2+2?", "chosen": "4", "rejected": "5"}
ULTRAFEEDBACK_RAW = {
    "source": "s",
    "instruction": "2+2?",
    "completions": [
        {"response": "4", "overall_score": 9.0},
        {"response": "5", "overall_score": 2.0},
        {"response": "four", "overall_score": 7.0},
    ],
}
NECTAR = {
    "prompt": "\n\nHuman: 2+2?\n\nAssistant:",
    "answers": [{"answer": "4", "rank": 1}, {"answer": "5", "rank": 3}, {"answer": "four", "rank": 2}],
    "turns": 1,
}
PKU = {"prompt": "2+2?", "response_0": "5", "response_1": "4", "better_response_id": 1, "safer_response_id": 0}
SHP = {"history": "2+2?", "human_ref_A": "4", "human_ref_B": "5", "labels": 1, "score_A": 10}
QUESTION = [U("2+2?")]
ANSWER = {"prompt": QUESTION, "completion": [A("4")]}  # SFT rows of the 2+2 schemas; PAIR above: preference
ALPACA_PROMPT = [U("Add 2 and 2.\n\nShow the sum.")]
DOLLY_PROMPT = [U("Who wrote it?\n\nHamlet is by Shakespeare.")]
ORCA_PROMPT = [S("You are helpful."), *QUESTION]


@pytest.mark.parametrize(
    "row, kind, expected, schema",
    [
        (ALPACA, "sft", {"prompt": ALPACA_PROMPT, "completion": [A("4")]}, "Alpaca"),
        (ALPACA, "prompt", {"prompt": ALPACA_PROMPT, "output": "4"}, "Alpaca"),
        ({**ALPACA, "input": ""}, "sft", {"prompt": [U("Add 2 and 2.")], "completion": [A("4")]}, "Alpaca"),
        (DOLLY, "sft", {"prompt": DOLLY_PROMPT, "completion": [A("Shakespeare")]}, "Dolly"),
        (DOLLY, "prompt", {"prompt": DOLLY_PROMPT, "response": "Shakespeare", "category": "qa"}, "Dolly"),
        (METAMATH, "sft", {"prompt": [U("What is 2+2?")], "completion": [A(METAMATH["response"])]}, "MetaMathQA"),
        (
            METAMATH,
            "prompt",
            {"prompt": [U("What is 2+2?")], "response": METAMATH["response"], "type": "GSM_Rephrased", "solution": "4"},
            "MetaMathQA",
        ),
        (NUMINA, "sft", {"prompt": [U(NUMINA["problem"])], "completion": [A(NUMINA["solution"])]}, "NuminaMath"),
        (
            NUMINA,
            "prompt",
            {"prompt": [U(NUMINA["problem"])], "solution": NUMINA["solution"], "source": "amc"},
            "Numina",
        ),
        (CAPYBARA, "sft", {"messages": [U("Hi"), A("Hello"), U("2+2?"), A("4")]}, "Capybara"),
        (CAPYBARA, "prompt", {"prompt": [U("Hi"), A("Hello"), U("2+2?")], "source": "s"}, "Capybara"),
        (ORCA, "preference", {**PAIR, "prompt": ORCA_PROMPT}, "Orca"),
        (ORCA, "sft", {**ANSWER, "prompt": ORCA_PROMPT}, "Orca"),
        (ORCA, "prompt", {"prompt": ORCA_PROMPT}, "question"),
        (ULTRAFEEDBACK_RAW, "preference", PAIR, "UltraFeedback"),
        (ULTRAFEEDBACK_RAW, "sft", ANSWER, "UltraFeedback"),
        (ULTRAFEEDBACK_RAW, "prompt", {"prompt": QUESTION, "source": "s"}, "instruction"),
        (NECTAR, "preference", PAIR, "Nectar"),
        (NECTAR, "sft", ANSWER, "Nectar"),
        (NECTAR, "prompt", {"prompt": QUESTION, "turns": 1}, "prompt"),
        (PKU, "preference", PAIR, "PKU-SafeRLHF"),
        (PKU, "sft", ANSWER, "PKU-SafeRLHF"),
        (SHP, "preference", PAIR, "SHP"),
        ({**SHP, "human_ref_A": "5", "human_ref_B": "4", "labels": 0}, "kto", PAIR, "SHP"),
        (
            SHP,
            "prompt",
            {"prompt": QUESTION, "human_ref_A": "4", "human_ref_B": "5", "labels": 1, "score_A": 10},
            "SHP",
        ),
    ],
)
def test_public_schemas_are_read_as_they_are(prepare, row, kind, expected, schema):
    rows, report = prepare([row], kind)
    assert rows == [expected]
    assert schema in report.schema, report.schema  # data inspect names the schema it read


def test_mapped_alpaca_and_orca_keep_their_input_and_system(prepare):
    """A mapping onto prompt/completion keeps Alpaca's input (joined to the instruction) and Orca's system
    column (the system message): nothing the row holds is dropped without a word."""
    rows, _ = prepare([ALPACA], "sft", "data.columns.prompt=instruction", "data.columns.completion=output")
    assert rows == [{"prompt": ALPACA_PROMPT, "completion": [A("4")]}]
    rows, _ = prepare([ORCA], "preference", "data.columns.prompt=question")
    assert rows == [{**PAIR, "prompt": ORCA_PROMPT}]
    rows, report = prepare([{"prompt": "2+2?", "completion": "4", "context": "Count."}], "sft")
    assert report.unread == ["context"] and "column 'context' is not read" in report.unread_note("context")


def test_kto_unpaired_data_trains_sft_on_its_desirable_answers_only(prepare):
    unpaired = [
        {"prompt": "2+2?", "completion": "4", "label": True},
        {"prompt": "2+2?", "completion": "5", "label": False},
    ]
    rows, report = prepare(unpaired, "sft")
    assert rows == [ANSWER]
    assert report.dropped == {"an undesirable answer (label false): SFT learns the desirable ones only": 1}
    with pytest.raises(LlmrlError, match="unpaired data: it serves kto, and sft"):
        prepare(unpaired, "preference")


def test_openassistant_roles_are_read_and_an_unknown_role_is_named(prepare):
    rows, report = prepare([{"messages": [{"role": "prompter", "content": "2+2?"}, A("4")]}], "sft")
    assert rows == [{"messages": [*QUESTION, A("4")]}] and report.notes == {"role 'prompter' read as 'user'": 1}
    with pytest.raises(LlmrlError, match="row 1: message 1 of column 'messages' has the role 'narrator'"):
        prepare([{"messages": [{"role": "narrator", "content": "Once"}, A("4")]}], "sft")


# ---------------------------------------------------------------------------------------------------------
# Lengths and filters


def test_percentiles():
    assert percentiles(list(range(1, 101))) == {"p50": 50, "p95": 95, "max": 100}
    assert percentiles([7]) == {"p50": 7, "p95": 7, "max": 7}


def test_long_prompts_are_dropped_and_reported(prepare, chat_tokenizer):
    rows = [{"prompt": "word " * n, "completion": "ok"} for n in (1, 5, 40, 80)]
    prompt_tokens = [
        len(
            chat_tokenizer.apply_chat_template(
                [U(r["prompt"])], add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
        )
        for r in rows
    ]
    kept, report = prepare(rows, "sft", "max_length=64")
    limit = int(0.7 * 64)
    assert len(kept) == sum(n <= limit for n in prompt_tokens) == 2
    assert report.counts[-1] == (f"prompt <= {limit} tokens", 2)
    assert report.dropped == {f"prompt longer than 70% of max_length ({limit} tokens)": 2}
    assert report.prompt_lengths["max"] == max(prompt_tokens)

    kept, report = prepare(rows, "sft", "max_length=64", "data.max_prompt_fraction=1.0")
    assert len(kept) == sum(n <= 64 for n in prompt_tokens)


def test_max_length_auto_is_the_95th_percentile(prepare):
    rows = [{"prompt": "q", "completion": "word " * n} for n in range(1, 41)]
    _, report = prepare(rows, "sft", "max_length=auto")
    assert report.max_length == report.total_lengths["p95"]
    assert report.max_length_note == "auto: p95 of the tokenized training examples"
    assert report.total_lengths["p50"] < report.max_length <= report.total_lengths["max"]


def test_max_length_auto_is_capped_by_the_model(prepare):
    rows = [{"prompt": "q", "completion": "word " * 3000}]
    _, report = prepare(rows, "sft", "max_length=auto")
    assert report.max_length == 2048  # builtin:tiny's max_position_embeddings
    assert "capped by the model's context of 2048" in report.max_length_note


def test_zero_rows_after_filtering(prepare):
    with pytest.raises(LlmrlError, match="has no rows left after dropping prompts over 2 tokens"):
        prepare([{"prompt": "a long prompt here", "completion": "x"}], "sft", "max_length=4")


# ---------------------------------------------------------------------------------------------------------
# Sources


def test_builtin_samples_have_train_and_test_splits():
    assert BUILTIN_DATASETS == ("builtin:preference", "builtin:prompts", "builtin:sft")
    for name in BUILTIN_DATASETS:
        cfg = load_config(sets=[f"dataset={name}"])
        assert len(load_split(cfg, "train")) >= 600 and len(load_split(cfg, "test")) >= 200


def test_sample_questions_appear_once_across_every_split_and_dataset():
    """Held-out means held out: no question of a test split is trained on by any stage."""
    questions = []
    for name in BUILTIN_DATASETS:
        cfg = load_config(sets=[f"dataset={name}"])
        for split in ("train", "test"):
            for row in load_split(cfg, split):
                messages = row.get("messages") or row["prompt"]
                questions.append(next(m["content"] for m in messages if m["role"] == "user"))
    assert len(questions) == len(set(questions)) == 3000


def test_short_names_pick_the_split_for_the_method():
    cfg = load_config(sets=["dataset=ultrafeedback"])
    assert [default_split(cfg, k) for k in ("sft", "preference", "prompt")] == ["train_sft", "train_prefs", "train_gen"]
    assert default_split(load_config(sets=["dataset=ultrafeedback", "split=test_prefs"]), "preference") == "test_prefs"
    assert default_split(load_config(sets=["dataset=gsm8k"]), "prompt") == "train"


def test_hub_loading_offline_is_a_clear_error():
    with pytest.raises(LlmrlError, match=r"could not load dataset 'openai/gsm8k' \(split 'train'\) from the Hugging"):
        load_split(load_config(sets=["dataset=gsm8k"]), kind="prompt")


ROWS = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(5)]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", "-lines.json", ".csv", ".parquet"])
def test_local_file_formats(tmp_path, suffix):
    import pandas as pd

    path = tmp_path / f"data{suffix}"
    frame = pd.DataFrame(ROWS)
    {
        ".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
        ".json": lambda: path.write_text(json.dumps(ROWS)),
        "-lines.json": lambda: frame.to_json(path, orient="records", lines=True),
        ".csv": lambda: frame.to_csv(path, index=False),
        ".parquet": lambda: frame.to_parquet(path),
    }[suffix]()
    assert load_split(load_config(sets=[f"dataset={path}"]), "train").to_list() == ROWS


def test_folder_of_split_files(tmp_path):
    for split, rows in (("train", ROWS), ("test", ROWS[:2])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(sets=[f"dataset={tmp_path}"])
    assert len(load_split(cfg, "train")) == 5 and load_split(cfg, "test").to_list() == ROWS[:2]
    with pytest.raises(LlmrlError, match="split 'validation' not found in .*; splits there: test, train"):
        load_split(cfg, "validation")


def test_max_samples():
    assert len(load_split(load_config(sets=["dataset=builtin:sft", "data.max_samples=7"]), "train")) == 7


@pytest.mark.parametrize(
    "name, content, message",
    [
        (
            "bad.jsonl",
            '{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": \n',
            r"bad.jsonl: line 2 is not valid JSON",
        ),
        ("bad.json", '[\n  {"prompt": "a"},\n  {"prompt": }\n]', r"bad.json: line 3 is not valid JSON"),
        ("empty.jsonl", "", r"dataset file .*empty.jsonl is empty"),
        ("binary.jsonl", b"\xff\xfe\x00garbage", r"binary.jsonl is not UTF-8 text: line 1, column 1 has byte 0xff"),
        (
            "latin1.jsonl",
            '{"prompt": "a"}\n{"prompt": "café"}\n'.encode("latin1"),
            r"latin1.jsonl is not UTF-8 text: line 2",
        ),
        (
            "latin1.csv",
            "prompt,completion\nhi,café\n".encode("latin1"),
            r"latin1.csv is not UTF-8 text: line 2, column 7",
        ),
        ("quote.csv", 'prompt,completion\nhi,there\n"what is 1+1?,2\nok,fine\n', r"quote.csv: the row from line 3 on"),
        (
            "fields.csv",
            "prompt,completion\nhi,there\nhi,there,again\n",
            r"fields.csv: line 3 has 3 fields, the header 2",
        ),
    ],
)
def test_bad_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(LlmrlError, match=message):
        load_split(load_config(sets=[f"dataset={path}"]), "train")


def test_single_file_has_only_train(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n")
    with pytest.raises(LlmrlError, match="a single dataset file has only the 'train' split, not 'test'"):
        load_split(load_config(sets=[f"dataset={path}"]), "test")


def test_unknown_builtin_and_missing_path():
    with pytest.raises(LlmrlError, match="unknown built-in dataset 'builtin:nope'; built-in datasets: builtin:pref"):
        load_split(load_config(sets=["dataset=builtin:nope"]))
    with pytest.raises(LlmrlError, match="dataset file or folder not found: ./missing"):
        load_split(load_config(sets=["dataset=./missing"]))


# ---------------------------------------------------------------------------------------------------------
# Through the CLI


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"prompt": "a"\n', "line 1 is not valid JSON"),
        ('{"foo": "a"}\n', "no sft schema matches the columns [foo]"),
        ('{"prompt": "a very long prompt indeed", "completion": "b"}\n', "has no rows left after dropping prompts"),
    ],
)
def test_bad_data_in_a_run_is_one_line_and_writes_nothing(tmp_path, content, message):
    (tmp_path / "d.jsonl").write_text(content)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        tiny_train_args(
            str(tmp_path / "d.jsonl"),
            str(out),
            "--set",
            "max_length=6",
        ),
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in result.output
    assert not out.exists()


def test_data_inspect(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"instruction": "What is 2+2?", "output": "4"}, {"instruction": "x " * 600, "output": "long"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(
        app,
        [
            "data",
            "inspect",
            "--dataset",
            str(path),
            "--method",
            "sft",
            "--set",
            "data.columns.prompt=instruction",
            "--set",
            "data.columns.completion=output",
            "--set",
            "max_length=256",
        ],
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "schema      prompt + completion" in out
    assert "mapping     prompt <- instruction, completion <- output" in out
    assert "loaded: 2 -> normalized (prompt + completion): 2 -> prompt <= 179 tokens: 1" in out.replace("\n", " ")
    assert "dropped 1: prompt longer than 70% of max_length (179 tokens)" in out
    assert "tokens      prompt p50" in out and "max_length  256 (as set)" in out
    result = runner.invoke(app, ["data", "inspect", "--dataset", "builtin:sft", "--model", "builtin:tiny"])
    assert "max_length  1024 (the default; max_length=auto fits it to the data)" in result.output
    prompt_part = out.split("--- prompt ---")[1].split("--- trained ---")[0]
    trained_part = out.split("--- trained ---")[1]
    assert "What is 2+2?" in prompt_part and "4<|im_end|>" in trained_part and "What is" not in trained_part


def test_data_inspect_preference_and_prompts():
    result = runner.invoke(app, ["data", "inspect", "--dataset", "builtin:preference", "--method", "dpo"])
    assert result.exit_code == 0, result.output
    assert "--- chosen ---" in result.output and "--- rejected ---" in result.output
    result = runner.invoke(app, ["data", "inspect", "--dataset", "builtin:prompts", "--method", "grpo"])
    assert result.exit_code == 0 and "--- column answer ---" in result.output


def test_data_inspect_bad_method():
    result = runner.invoke(app, ["data", "inspect", "--dataset", "builtin:sft", "--method", "foo"])
    assert result.exit_code == 2 and "error: unknown method 'foo'" in result.output


def test_file_extensions_are_read_in_any_case(tmp_path):
    """Files from Windows and older tools: ROWS.JSONL, a folder's TRAIN.CSV."""
    (tmp_path / "ROWS.JSONL").write_text(json.dumps({"prompt": "2+2?", "completion": "4"}) + "\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "train.CSV").write_text("prompt,completion\n2+2?,4\n")
    for source in (tmp_path / "ROWS.JSONL", tmp_path / "folder"):
        rows = load_split(load_config(sets=[f"dataset={source}"])).to_list()
        assert [{k: str(v) for k, v in row.items()} for row in rows] == [{"prompt": "2+2?", "completion": "4"}]
