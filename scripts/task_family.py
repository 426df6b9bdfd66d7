"""A family of verifiable tasks like the bundled one (short questions about numbers in plain English, numeric
answers), to choose and check online-RL settings on tasks they were not tuned on.

Each task has question kinds and wordings of its own (none of the bundled task's templates): money, ages,
measures, counting, sharing, weather, a number line, points in games. A task is written as a folder of the
bundled data's shape: ``sft/train.jsonl`` (conversations with a worked answer ending in ``#### N``) and
``prompts/`` (prompts with the ``answer`` column, ``train.jsonl`` and ``test.jsonl``); no training row asks a
test question.

``TUNING`` names the tasks settings are chosen on; ``HELD_OUT`` the ones they are reported on
(``scripts/rl_family.py``). The output is deterministic for a task name and seed.

    .venv/bin/python scripts/task_family.py OUT_DIR [--tasks shop,ages] [--seed 0]
"""

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_sample_data import PEOPLE, Problem, prompt_row, sft_row  # noqa: E402

SIZES = {"sft": (600, 0), "prompts": (800, 400)}  # (train, test) rows, as the bundled task
THINGS = "pen book cap kite ball mug lamp bell drum cup".split()  # noqa: SIM905


def two(rng: random.Random, low: int = 2, high: int = 60) -> tuple[int, int]:
    """Two different numbers, the first the larger."""
    a, b = rng.sample(range(low, high + 1), 2)
    return max(a, b), min(a, b)


def say(rng: random.Random, templates: tuple[str, ...], **values) -> str:
    return rng.choice(templates).format(**values)


def added(question: str, a: int, b: int) -> Problem:
    return Problem(question, a + b, f"{a} + {b} = {a + b}", f"{a} - {b} = {a - b}", a - b)


def taken(question: str, a: int, b: int) -> Problem:
    return Problem(question, a - b, f"{a} - {b} = {a - b}", f"{a} + {b} = {a + b}", a + b)


def times(question: str, a: int, b: int) -> Problem:
    return Problem(question, a * b, f"{a} * {b} = {a * b}", f"{a} + {b} = {a + b}", a + b)


def shared(question: str, total: int, b: int) -> Problem:
    return Problem(question, total // b, f"{total} / {b} = {total // b}", f"{total} - {b} = {total - b}", total - b)


def chosen(question: str, answer: int, other: int, word: str) -> Problem:
    return Problem(question, answer, f"{answer} is {word}", f"{other} is {word}", other)


# --- the question kinds: rng, a person, another person -> Problem ---------------------------------------


def price_of_two(rng, p, o):
    a, b = two(rng, 2, 40)
    x, y = rng.sample(THINGS, 2)
    return added(
        say(
            rng,
            (
                "A {x} costs {a} coins and a {y} costs {b} coins. What do both cost?",
                "{p} buys a {x} for {a} coins and a {y} for {b} coins. How much does {p} spend?",
                "The {x} is {a} coins, the {y} is {b}. What is the bill for the two?",
            ),
            p=p,
            x=x,
            y=y,
            a=a,
            b=b,
        ),
        a,
        b,
    )


def change(rng, p, o):
    a, b = two(rng, 5, 60)
    x = rng.choice(THINGS)
    return taken(
        say(
            rng,
            (
                "{p} pays {a} coins for a {x} that costs {b}. How much change does {p} get back?",
                "A {x} costs {b} coins. {p} hands over {a} coins. What change is due?",
                "{p} has {a} coins and spends {b} on a {x}. How many coins are left?",
            ),
            p=p,
            x=x,
            a=a,
            b=b,
        ),
        a,
        b,
    )


def price_of_many(rng, p, o):
    a, b = rng.randint(2, 12), rng.randint(2, 5)
    x = rng.choice(THINGS)
    return times(
        say(
            rng,
            (
                "One {x} costs {a} coins. What do {b} of them cost?",
                "{p} buys {b} of the {x}s at {a} coins each. What is the total price?",
            ),
            p=p,
            x=x,
            a=a,
            b=b,
        ),
        a,
        b,
    )


def age_later(rng, p, o):
    a, b = rng.randint(3, 60), rng.randint(2, 20)
    return added(
        say(
            rng,
            (
                "{p} is {a} years old. How old will {p} be in {b} years?",
                "In {b} years, how old will {p} be if {p} is {a} today?",
            ),
            p=p,
            a=a,
            b=b,
        ),
        a,
        b,
    )


def age_earlier(rng, p, o):
    a, b = two(rng, 3, 70)
    return taken(
        say(
            rng,
            ("{p} is {a} now. How old was {p} {b} years ago?", "{b} years ago, how old was {p}, who is {a} today?"),
            p=p,
            a=a,
            b=b,
        ),
        a,
        b,
    )


def age_gap(rng, p, o):
    a, b = two(rng, 3, 70)
    return taken(
        say(
            rng,
            (
                "{p} is {a} and {o} is {b}. By how many years is {p} older?",
                "{o} is {b} years old and {p} is {a}. How many years younger is {o}?",
            ),
            p=p,
            o=o,
            a=a,
            b=b,
        ),
        a,
        b,
    )


def trip_minutes(rng, p, o):
    a, b = two(rng, 3, 50)
    return added(
        say(
            rng,
            (
                "A walk takes {a} minutes and a bus ride {b} minutes. How many minutes is the whole trip?",
                "{p} cycles for {a} minutes, then runs for {b} minutes. How many minutes of exercise?",
            ),
            p=p,
            a=a,
            b=b,
        ),
        a,
        b,
    )


def rope_cut(rng, p, o):
    a, b = two(rng, 4, 80)
    return taken(
        say(
            rng,
            (
                "A rope is {a} metres long. {b} metres are cut off. How long is the rest?",
                "{p} has a ribbon of {a} centimetres and uses {b}. How many centimetres remain?",
            ),
            p=p,
            a=a,
            b=b,
        ),
        a,
        b,
    )


def longer(rng, p, o):
    a, b = two(rng, 4, 90)
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    if rng.random() < 0.5:
        return chosen(
            say(
                rng,
                (
                    "One path is {x} metres and another {y} metres. How long is the longer one?",
                    "Which is longer, a {x} cm pencil or a {y} cm pencil? Give its length.",
                ),
                x=first,
                y=second,
            ),
            a,
            b,
            "longer",
        )
    return chosen(
        say(
            rng,
            (
                "One path is {x} metres and another {y} metres. How long is the shorter one?",
                "Which is shorter, a {x} cm stick or a {y} cm stick? Give its length.",
            ),
            x=first,
            y=second,
        ),
        b,
        a,
        "shorter",
    )


def next_in_line(rng, p, o):
    start, step = rng.randint(1, 40), rng.randint(2, 9)
    seq = [start + k * step for k in range(3)]
    answer = start + 3 * step
    question = say(
        rng,
        ("What number comes next: {x}, {y}, {z}, ...?", "Continue the pattern {x}, {y}, {z}. What is next?"),
        x=seq[0],
        y=seq[1],
        z=seq[2],
    )
    return Problem(question, answer, f"{seq[2]} + {step} = {answer}", f"{seq[2]} + 1 = {seq[2] + 1}", seq[2] + 1)


def neighbours(rng, p, o):
    a = rng.randint(5, 95)
    if rng.random() < 0.5:
        return added(
            say(
                rng,
                ("Count on {b} from {a}. Where do you land?", "What is {b} steps after {a}?"),
                a=a,
                b=(b := rng.randint(2, 5)),
            ),
            a,
            b,
        )
    return taken(
        say(
            rng,
            ("Count back {b} from {a}. Where do you land?", "What is {b} steps before {a}?"),
            a=a,
            b=(b := rng.randint(2, 5)),
        ),
        a,
        b,
    )


def doubled(rng, p, o):
    a = rng.randint(2, 99)
    if rng.random() < 0.5:
        return times(say(rng, ("What is {a} doubled?", "{p} doubles {a}. What does {p} get?"), p=p, a=a), 2, a)
    return shared(say(rng, ("What is {t} halved?", "Halve {t}. What do you get?"), t=2 * a), 2 * a, 2)


def share_out(rng, p, o):
    b, each = rng.randint(2, 9), rng.randint(2, 12)
    return shared(
        say(
            rng,
            (
                "{p} shares {t} sweets equally among {b} friends. How many does each friend get?",
                "{t} apples are packed into {b} equal boxes. How many apples go in each box?",
                "{t} chairs stand in {b} equal rows. How many chairs are in a row?",
            ),
            p=p,
            t=b * each,
            b=b,
        ),
        b * each,
        b,
    )


def pages_left(rng, p, o):
    a, b = two(rng, 10, 90)
    return taken(
        say(
            rng,
            (
                "A book has {a} pages. {p} has read {b}. How many pages are left to read?",
                "{p} must write {a} lines and has written {b}. How many lines to go?",
            ),
            p=p,
            a=a,
            b=b,
        ),
        a,
        b,
    )


def game_points(rng, p, o):
    a, b = two(rng, 2, 50)
    return added(
        say(
            rng,
            (
                "{p} scored {a} points in the first game and {b} in the second. What was the total score?",
                "A team won {a} points on Monday and {b} on Tuesday. How many points in all?",
            ),
            p=p,
            a=a,
            b=b,
        ),
        a,
        b,
    )


def point_lead(rng, p, o):
    a, b = two(rng, 2, 60)
    return taken(
        say(
            rng,
            (
                "{p} has {a} points and {o} has {b}. How far ahead is {p}?",
                "The score is {a} to {b}. By how many points does the leader lead?",
            ),
            p=p,
            o=o,
            a=a,
            b=b,
        ),
        a,
        b,
    )


def warmer(rng, p, o):
    a, b = rng.randint(1, 25), rng.randint(2, 12)
    return added(
        say(
            rng,
            (
                "It was {a} degrees in the morning and {b} degrees warmer at noon. How warm was it at noon?",
                "The water is {a} degrees. It heats up by {b} degrees. What is its temperature now?",
            ),
            a=a,
            b=b,
        ),
        a,
        b,
    )


def cooler(rng, p, o):
    a, b = two(rng, 4, 35)
    return taken(
        say(
            rng,
            (
                "It was {a} degrees at noon and {b} degrees colder at night. How cold was it at night?",
                "The soup is {a} degrees and cools by {b} degrees. What is its temperature now?",
            ),
            a=a,
            b=b,
        ),
        a,
        b,
    )


def warmest(rng, p, o):
    a, b, c = rng.sample(range(1, 40), 3)
    if rng.random() < 0.5:
        return chosen(
            say(rng, ("Monday was {a} degrees, Tuesday {b} and Wednesday {c}. What was the warmest?",), a=a, b=b, c=c),
            max(a, b, c),
            min(a, b, c),
            "the warmest",
        )
    return chosen(
        say(rng, ("Monday was {a} degrees, Tuesday {b} and Wednesday {c}. What was the coldest?",), a=a, b=b, c=c),
        min(a, b, c),
        max(a, b, c),
        "the coldest",
    )


def apart(rng, p, o):
    a, b = two(rng, 1, 90)
    x, y = (a, b) if rng.random() < 0.5 else (b, a)
    return taken(
        say(
            rng,
            ("How far apart are {x} and {y} on the number line?", "What is the distance from {x} to {y}?"),
            x=x,
            y=y,
        ),
        a,
        b,
    )


def furthest(rng, p, o):
    a, b, c = rng.sample(range(1, 95), 3)
    if rng.random() < 0.5:
        return chosen(
            say(rng, ("On a number line with {a}, {b} and {c}, which one is furthest right?",), a=a, b=b, c=c),
            max(a, b, c),
            min(a, b, c),
            "furthest right",
        )
    return chosen(
        say(rng, ("On a number line with {a}, {b} and {c}, which one is furthest left?",), a=a, b=b, c=c),
        min(a, b, c),
        max(a, b, c),
        "furthest left",
    )


def midpoint(rng, p, o):
    a, half = rng.randint(1, 40), rng.randint(1, 20)
    b = a + 2 * half
    return Problem(
        say(rng, ("What number is halfway between {a} and {b}?",), a=a, b=b),
        a + half,
        f"({a} + {b}) / 2 = {a + half}",
        f"{b} - {a} = {b - a}",
        b - a,
    )


TASKS = {  # name -> its question kinds
    "shop": (price_of_two, change, price_of_many),
    "ages": (age_later, age_earlier, age_gap),
    "measures": (trip_minutes, rope_cut, longer),
    "counting": (next_in_line, neighbours, doubled),
    "sharing": (share_out, pages_left, price_of_many),
    "games": (game_points, point_lead, doubled),
    "weather": (warmer, cooler, warmest),
    "numberline": (apart, furthest, midpoint),
}
TUNING = ("shop", "ages", "measures")  # settings are chosen on these ...
HELD_OUT = ("counting", "sharing", "games", "weather", "numberline")  # ... and reported on these


def write_task(name: str, out_dir: Path, seed: int = 0) -> Path:
    """Write task ``name`` to ``out_dir/name`` (sft/ and prompts/, train and test) and return that folder. The
    test questions are drawn first, all different; no training row asks one of them."""
    kinds = TASKS[name]
    rng = random.Random(f"{name}-{seed}")

    def problem() -> Problem:
        person, other = rng.sample(PEOPLE, 2)
        return rng.choice(kinds)(rng, person, other)

    test: dict[str, Problem] = {}
    while len(test) < SIZES["prompts"][1]:
        drawn = problem()
        test.setdefault(drawn.question, drawn)
    folder = out_dir / name
    for data, make_row in (("sft", sft_row), ("prompts", prompt_row)):
        train = []
        while len(train) < SIZES[data][0]:
            drawn = problem()
            if drawn.question not in test:
                train.append(make_row(rng, drawn))
        splits = {"train": train, "test": [make_row(rng, p) for p in test.values()] if data == "prompts" else []}
        for split, rows in splits.items():
            if rows:
                (folder / data).mkdir(parents=True, exist_ok=True)
                (folder / data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.tasks.split(","):
        if name not in TASKS:
            sys.exit(f"unknown task '{name}'; known: {', '.join(TASKS)}")
        print(write_task(name, args.out_dir, args.seed))


if __name__ == "__main__":
    main()
