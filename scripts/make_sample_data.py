"""Generate the sample datasets bundled in llmrl/data/samples/.

A short verifiable task: questions about numbers in plain English (totals, what is left, how many more,
the bigger or smaller of two or three, twice and half, one more or less, equal groups) with one- and two-digit
numbers, each with one numeric answer. What makes it hard is reading the question, which operation or which
number it asks for, more than the arithmetic. The questions are phrased with templates of their own, not
those of the corpus that ``builtin:small`` is pretrained on (``llmrl/corpus.py``), so that the pipeline
measures what training adds to what the base model knows.

- sft/         chat conversations (``messages``): a question and a worked answer ending in ``#### N``.
- preference/  pairs with an explicit prompt (``prompt``, ``chosen``, ``rejected``, conversational): the chosen
               answer is right; the rejected one slips in the arithmetic, uses the wrong operation, ends on a
               number other than the one it worked out, or gives a bare wrong guess.
- prompts/     prompt-only rows with the verifiable ``answer`` column, for online RL and evaluation.

Each folder has ``train.jsonl`` and ``test.jsonl``; no question appears in two splits or two folders.
The output is deterministic: run ``python scripts/make_sample_data.py`` and commit the result.
"""

import json
import random
from dataclasses import dataclass
from pathlib import Path

from llmrl.corpus import pick  # one of the templates, filled in

OUT_DIR = Path(__file__).resolve().parent.parent / "llmrl" / "data" / "samples"
SEED = 2026
SIZES = {"sft": (600, 200), "preference": (800, 200), "prompts": (800, 400)}
SYSTEM_PROMPT = "Solve the problem and end with '#### <answer>'."
PEOPLE = "Lena Marco Priya Jonah Keiko Tariq Elsa Bruno Wen Dara Milo Rosa Ayla Femi Greta Hamid".split()  # noqa: SIM905
ITEMS = "marbles stamps shells crayons tickets badges acorns pebbles beads coins cards buttons".split()  # noqa: SIM905


@dataclass
class Problem:
    question: str
    answer: int
    work: str  # the worked line, e.g. "23 + 8 = 31", or "41 is bigger than 17"
    wrong_work: str  # a plausible mistake: the other operation, or the other number
    wrong: int  # that mistake's result


def numbers(rng: random.Random, count: int = 2, distinct: bool = True) -> list[int]:
    """Numbers of one or two digits, two digits more often; for two, usually one of each size (easy sums)."""
    if count == 2 and rng.random() < 0.6:
        pair = [rng.randint(10, 60), rng.randint(1, 9)]
        rng.shuffle(pair)
        return pair
    while True:
        values = [rng.randint(1, 60) for _ in range(count)]
        if not distinct or len(set(values)) == count:
            return values


# Each kind asks for one operation or one of the numbers, in several phrasings: what is hard is reading the
# question (which operation, which number), not the arithmetic.


def total(rng, p, o, i):
    a, b = numbers(rng)
    q = pick(
        rng,
        (
            "{p} has {a} {i} and {o} has {b}. How many {i} do they have together?",
            "{p} brings {a} {i} and {o} brings {b} {i}. How many {i} are there in all?",
            "A box holds {a} {i} and a bag holds {b}. How many {i} altogether?",
            "Work out {a} plus {b}.",
            "What do {a} and {b} add up to?",
            "{p} read {a} pages yesterday and {b} pages today. How many pages did {p} read?",
        ),
        p=p,
        o=o,
        i=i,
        a=a,
        b=b,
    )
    return Problem(q, a + b, f"{a} + {b} = {a + b}", f"{max(a, b)} - {min(a, b)} = {abs(a - b)}", abs(a - b))


def left(rng, p, o, i):
    a, b = sorted(numbers(rng), reverse=True)
    q = pick(
        rng,
        (
            "{p} had {a} {i} and gave {b} to {o}. How many {i} does {p} have left?",
            "There were {a} {i} on the table. {p} took {b}. How many are still on the table?",
            "{p} bakes {a} {i} and sells {b}. How many {i} are not sold?",
            "Take {b} away from {a}. What is left?",
            "What is {a} minus {b}?",
            "A bus has {a} people. {b} get off. How many people stay on the bus?",
        ),
        p=p,
        o=o,
        i=i,
        a=a,
        b=b,
    )
    return Problem(q, a - b, f"{a} - {b} = {a - b}", f"{a} + {b} = {a + b}", a + b)


def more(rng, p, o, i):
    a, b = sorted(numbers(rng), reverse=True)
    q = pick(
        rng,
        (
            "{p} has {a} {i} and {o} has {b}. How many more {i} does {p} have than {o}?",
            "{o} has {b} {i} and {p} has {a}. How many fewer {i} does {o} have?",
            "How much bigger is {a} than {b}?",
            "What is the difference between {a} and {b}?",
            "What is the difference between {b} and {a}?",
            "{p} is {a} years old and {o} is {b}. How many years older is {p}?",
        ),
        p=p,
        o=o,
        i=i,
        a=a,
        b=b,
    )
    return Problem(q, a - b, f"{a} - {b} = {a - b}", f"{a} + {b} = {a + b}", a + b)


def compare(rng, p, o, i):
    a, b = numbers(rng)
    big = rng.random() < 0.5
    if big:
        q = pick(
            rng,
            (
                "Which number is bigger, {a} or {b}?",
                "Which is greater: {a} or {b}?",
                "{p} has {a} {i} and {o} has {b}. How many {i} does the one with more have?",
                "Give the larger of {a} and {b}.",
                "Of {a} and {b}, which is more?",
            ),
            p=p,
            o=o,
            i=i,
            a=a,
            b=b,
        )
        hi, lo = max(a, b), min(a, b)
        return Problem(q, hi, f"{hi} is bigger than {lo}", f"{lo} is bigger than {hi}", lo)
    q = pick(
        rng,
        (
            "Which number is smaller, {a} or {b}?",
            "Which is less: {a} or {b}?",
            "{p} has {a} {i} and {o} has {b}. How many {i} does the one with fewer have?",
            "Give the smaller of {a} and {b}.",
            "Of {a} and {b}, which is fewer?",
        ),
        p=p,
        o=o,
        i=i,
        a=a,
        b=b,
    )
    hi, lo = max(a, b), min(a, b)
    return Problem(q, lo, f"{lo} is smaller than {hi}", f"{hi} is smaller than {lo}", hi)


def extreme(rng, p, o, i):
    a, b, c = numbers(rng, 3)
    big = rng.random() < 0.5
    word = rng.choice(("largest", "biggest", "greatest")) if big else rng.choice(("smallest", "least"))
    q = pick(
        rng,
        (
            "What is the {w} of {a}, {b} and {c}?",
            "Which of {a}, {b} and {c} is the {w}?",
            "Three friends have {a}, {b} and {c} {i}. What is the {w} number of {i}?",
        ),
        w=word,
        a=a,
        b=b,
        c=c,
        i=i,
    )
    answer, other = (max(a, b, c), min(a, b, c)) if big else (min(a, b, c), max(a, b, c))
    return Problem(
        q, answer, f"the {word} of {a}, {b} and {c} is {answer}", f"the {word} of {a}, {b} and {c} is {other}", other
    )


def twice(rng, p, o, i):
    b = rng.randint(2, 40)
    if rng.random() < 0.5:
        q = pick(
            rng,
            (
                "{o} has {b} {i}. {p} has twice as many. How many {i} does {p} have?",
                "What is double {b}?",
                "What number is two times {b}?",
            ),
            p=p,
            o=o,
            i=i,
            b=b,
        )
        return Problem(q, 2 * b, f"2 * {b} = {2 * b}", f"{b} + 2 = {b + 2}", b + 2)
    b = 2 * rng.randint(1, 30)
    q = pick(
        rng,
        (
            "{o} has {b} {i}. {p} has half as many. How many {i} does {p} have?",
            "What is half of {b}?",
            "Split {b} {i} equally between two friends. How many does each get?",
        ),
        p=p,
        o=o,
        i=i,
        b=b,
    )
    return Problem(q, b // 2, f"{b} / 2 = {b // 2}", f"{b} - 2 = {b - 2}", b - 2)


def step(rng, p, o, i):
    a = rng.randint(1, 98)
    if rng.random() < 0.5:
        q = pick(
            rng,
            (
                "What number comes right after {a}?",
                "What is one more than {a}?",
                "{p} has {a} {i} and finds one more. How many {i} now?",
            ),
            p=p,
            i=i,
            a=a,
        )
        return Problem(q, a + 1, f"{a} + 1 = {a + 1}", f"{a} - 1 = {a - 1}", a - 1)
    q = pick(
        rng,
        (
            "What number comes right before {a}?",
            "What is one less than {a}?",
            "{p} has {a} {i} and loses one. How many {i} now?",
        ),
        p=p,
        i=i,
        a=a,
    )
    return Problem(q, a - 1, f"{a} - 1 = {a - 1}", f"{a} + 1 = {a + 1}", a + 1)


def groups(rng, p, o, i):
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    q = pick(
        rng,
        (
            "{p} has {b} bags with {a} {i} in each. How many {i} is that?",
            "There are {b} rows of {a} {i}. How many {i} in total?",
            "What is {a} times {b}?",
        ),
        p=p,
        i=i,
        a=a,
        b=b,
    )
    return Problem(q, a * b, f"{b} * {a} = {a * b}", f"{b} + {a} = {a + b}", a + b)


KINDS = {total: 3, left: 3, more: 3, compare: 3, extreme: 2, twice: 2, step: 1, groups: 1}  # kind -> weight


def make_problem(rng: random.Random) -> Problem:
    person, other = rng.sample(PEOPLE, 2)
    kind = rng.choices(list(KINDS), list(KINDS.values()))[0]
    return kind(rng, person, other, rng.choice(ITEMS))


def worked(work: str, answer: int) -> str:
    return f"{work}\n#### {answer}"


def sft_row(rng: random.Random, problem: Problem) -> dict:
    messages = [
        {"role": "user", "content": problem.question},
        {"role": "assistant", "content": worked(problem.work, problem.answer)},
    ]
    if rng.random() < 0.2:
        messages.insert(0, {"role": "system", "content": SYSTEM_PROMPT})
    return {"messages": messages}


def preference_row(rng: random.Random, problem: Problem) -> dict:
    off = rng.randint(1, 9)
    slip = problem.answer - off if problem.answer >= off and rng.random() < 0.5 else problem.answer + off
    start = problem.work.rsplit(" ", 1)[0]  # "23 + 18 =", or for comparisons "41 is bigger than"
    kind = rng.random()
    if kind < 0.3 and start.endswith("="):
        rejected = worked(f"{start} {slip}", slip)  # a slip in the arithmetic
    elif kind < 0.6:
        rejected = worked(problem.wrong_work, problem.wrong)  # the wrong operation, or the other number
    elif kind < 0.8:
        rejected = worked(problem.work, slip)  # worked out right, then ends on another number
    else:
        rejected = f"I think it is {slip}."  # a bare guess, no working, no final line
    return {
        "prompt": [{"role": "user", "content": problem.question}],
        "chosen": [{"role": "assistant", "content": worked(problem.work, problem.answer)}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def prompt_row(rng: random.Random, problem: Problem) -> dict:
    return {"prompt": [{"role": "user", "content": problem.question}], "answer": str(problem.answer)}


def main() -> None:
    row_makers = {"sft": sft_row, "preference": preference_row, "prompts": prompt_row}
    rng = random.Random(SEED)
    taken: set[str] = set()  # questions are unique across every split of every folder
    for name, (n_train, n_test) in SIZES.items():
        for split, count in (("train", n_train), ("test", n_test)):
            rows = []
            while len(rows) < count:
                problem = make_problem(rng)
                if problem.question not in taken:
                    taken.add(problem.question)
                    rows.append(row_makers[name](rng, problem))
            path = OUT_DIR / name / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(row) + "\n" for row in rows))
            print(f"wrote {len(rows):4d} rows to {path.relative_to(OUT_DIR.parent.parent.parent)}")


if __name__ == "__main__":
    main()
