"""Generate the sample datasets bundled in llmrl/data/samples/.

A synthetic arithmetic task, so that every stage of the pipeline can show measurable learning offline:

- sft/         chat conversations (``messages``): a question and a worked answer ending in ``#### N``.
- preference/  pairs with an explicit prompt (``prompt``, ``chosen``, ``rejected``, conversational):
               the chosen answer is right; the rejected one is off by a small amount, and half the time
               also skips the final '#### N' line.
- prompts/     prompt-only rows with the verifiable ``answer`` column, for online RL and evaluation.

Each folder has ``train.jsonl`` and ``test.jsonl``; no question appears in both splits of a folder.
The output is deterministic: run ``python scripts/make_sample_data.py`` and commit the result.
"""

import json
import random
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent.parent / "llmrl" / "data" / "samples"
SEED = 1234
SIZES = {"sft": (400, 100), "preference": (300, 100), "prompts": (300, 100)}
SYSTEM_PROMPT = "You are a careful assistant. Answer arithmetic questions and end with '#### <answer>'."


def make_question(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(0, 9), rng.randint(0, 9)  # small enough that a small model can learn it on a CPU
    op = rng.choice("+-*")
    result = {"+": a + b, "-": a - b, "*": a * b}[op]
    template = rng.choice(["What is {a} {op} {b}?", "Compute {a} {op} {b}.", "{a} {op} {b} = ?"])
    return template.format(a=a, op=op, b=b), result


def worked_answer(question: str, result: int) -> str:
    expression = question.removeprefix("What is ").removeprefix("Compute ").rstrip("?.= ")
    return f"{expression} = {result}\n#### {result}"


def unique_questions(rng: random.Random, count: int, taken: set[str]) -> list[tuple[str, int]]:
    questions = []
    while len(questions) < count:
        question, result = make_question(rng)
        if question not in taken:
            taken.add(question)
            questions.append((question, result))
    return questions


def sft_row(rng: random.Random, question: str, result: int) -> dict:
    messages = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": worked_answer(question, result)},
    ]
    if rng.random() < 0.25:
        messages.insert(0, {"role": "system", "content": SYSTEM_PROMPT})
    return {"messages": messages}


def preference_row(rng: random.Random, question: str, result: int) -> dict:
    wrong = result + rng.choice([-1, 1]) * rng.randint(1, 9)
    # half the rejected answers are wrong in the right format, half are wrong and skip the '#### N' line
    rejected = worked_answer(question, wrong) if rng.random() < 0.5 else f"I think it is {wrong}."
    return {
        "prompt": [{"role": "user", "content": question}],
        "chosen": [{"role": "assistant", "content": worked_answer(question, result)}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def prompt_row(rng: random.Random, question: str, result: int) -> dict:
    return {"prompt": [{"role": "user", "content": question}], "answer": str(result)}


def main() -> None:
    row_makers = {"sft": sft_row, "preference": preference_row, "prompts": prompt_row}
    for name, (n_train, n_test) in SIZES.items():
        rng = random.Random(f"{SEED}-{name}")
        taken: set[str] = set()
        for split, count in (("train", n_train), ("test", n_test)):
            rows = [row_makers[name](rng, q, r) for q, r in unique_questions(rng, count, taken)]
            path = OUT_DIR / name / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(row) + "\n" for row in rows))
            print(f"wrote {len(rows):4d} rows to {path.relative_to(OUT_DIR.parent.parent.parent)}")


if __name__ == "__main__":
    main()
