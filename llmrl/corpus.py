"""The synthetic corpus that ``builtin:small`` is pretrained on: general skills about numbers and words.

Every document is made from a seeded ``random.Random``, so the corpus, and the model pretrained on it, are the
same on every machine. A document exercises one skill (adding, subtracting or multiplying one- and two-digit
numbers, comparing, counting, ordering, copying, digits, number words, word problems, checking a claim, ...)
asked in one of many phrasings, and is written in one of several layouts: a plain statement, a question and its
answer as plain text, or a ChatML conversation of one to three exchanges whose answers are bare, a sentence, or
worked with a final ``#### N`` line. A few documents are plain English sentences with no numbers at all.

    from llmrl.corpus import documents
    for text in documents(seed=0, count=5): print(text)
"""

import random
from dataclasses import dataclass

NAMES = [
    "Tom",
    "Anna",
    "Ben",
    "Sara",
    "Leo",
    "Mia",
    "Sam",
    "Lily",
    "Max",
    "Emma",
    "Jack",
    "Zoe",
    "Noah",
    "Ava",
    "Liam",
    "Ella",
    "Omar",
    "Nina",
    "Ravi",
    "Yuki",
    "Carlos",
    "Ines",
    "Kofi",
    "Amara",
    "Ivan",
    "Olga",
    "Chen",
    "Mei",
    "Lucas",
    "Sofia",
    "Ali",
    "Hana",
    "Peter",
    "Grace",
    "David",
    "Ruth",
    "Mark",
    "Julia",
    "Paul",
    "Clara",
    "Hugo",
    "Alma",
    "Felix",
    "Ada",
    "Oscar",
    "Iris",
    "Jonas",
    "Vera",
    "Theo",
    "Nora",
]
THINGS = [
    "apples",
    "pears",
    "oranges",
    "plums",
    "cookies",
    "cakes",
    "candies",
    "books",
    "pens",
    "pencils",
    "stickers",
    "stamps",
    "coins",
    "marbles",
    "balls",
    "cards",
    "shells",
    "stones",
    "flowers",
    "roses",
    "tulips",
    "eggs",
    "cups",
    "plates",
    "spoons",
    "toys",
    "cars",
    "boats",
    "kites",
    "hats",
    "shirts",
    "socks",
    "buttons",
    "beads",
    "rings",
    "ribbons",
    "letters",
    "photos",
    "seeds",
    "nuts",
    "carrots",
    "potatoes",
    "tomatoes",
    "lemons",
    "peaches",
    "cherries",
    "bottles",
    "jars",
    "boxes",
    "bags",
    "bricks",
    "blocks",
    "shoes",
    "gloves",
    "paintings",
    "songs",
]
THINGS += [
    "students",
    "chairs",
    "desks",
    "tables",
    "trees",
    "pages",
    "stories",
    "pictures",
    "tickets",
    "points",
    "dollars",
    "minutes",
    "hours",
    "days",
    "miles",
    "songs",
    "games",
    "puzzles",
    "bikes",
    "buses",
    "trucks",
    "houses",
    "windows",
    "doors",
    "lamps",
    "candles",
    "pillows",
    "blankets",
    "stars",
    "rocks",
    "leaves",
    "sticks",
    "bananas",
    "grapes",
    "melons",
    "muffins",
    "pies",
    "sandwiches",
    "pizzas",
    "bowls",
    "forks",
    "glasses",
    "towels",
    "keys",
    "tools",
    "nails",
    "boards",
    "bricks",
    "coins",
    "bills",
    "jars",
    "notes",
    "emails",
    "messages",
    "friends",
    "guests",
    "players",
    "teams",
    "cookies",
]
ANIMALS = [
    "cats",
    "dogs",
    "birds",
    "fish",
    "ducks",
    "cows",
    "sheep",
    "goats",
    "horses",
    "rabbits",
    "frogs",
    "bees",
    "ants",
    "hens",
    "pigs",
    "mice",
]
PLACES = [
    "park",
    "garden",
    "school",
    "kitchen",
    "library",
    "shop",
    "farm",
    "market",
    "beach",
    "forest",
    "house",
    "street",
    "class",
    "office",
]
CONTAINERS = ["box", "bag", "basket", "jar", "bowl", "crate", "shelf", "drawer", "bucket", "tray"]
CONTAINER_PLURALS = ["boxes", "bags", "baskets", "jars", "bowls", "crates", "shelves", "drawers", "buckets", "trays"]
GAIN_VERBS = ["gets", "buys", "finds", "receives", "wins", "collects", "makes", "picks"]
LOSS_VERBS = ("gives away", "sells", "loses", "eats", "uses", "spends", "breaks", "drops")
COLORS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple", "pink", "brown", "gray", "gold"]
WORDS = [
    "apple",
    "river",
    "mountain",
    "garden",
    "window",
    "yellow",
    "happy",
    "quiet",
    "orange",
    "table",
    "pencil",
    "little",
    "summer",
    "winter",
    "paper",
    "music",
    "friend",
    "silver",
    "forest",
    "planet",
    "rocket",
    "dragon",
    "bridge",
    "candle",
    "circle",
    "doctor",
    "engine",
    "farmer",
    "guitar",
    "island",
    "jacket",
    "kitten",
    "ladder",
    "monkey",
    "number",
    "ocean",
    "pepper",
    "rabbit",
    "sister",
    "tiger",
    "violin",
    "wagon",
    "zebra",
    "morning",
    "evening",
    "cloud",
    "stone",
    "water",
    "bread",
    "light",
    "dream",
    "story",
    "heart",
    "voice",
    "smile",
]
ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
ONES += "seventeen eighteen nineteen"
ONES = ONES.split()
TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth"]
SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a careful assistant. Answer briefly.",
    "Answer the question.",
    "You are good at math.",
    "Be concise.",
)


def number_word(n: int) -> str:
    """0..999 in English words: 42 -> forty-two, 105 -> one hundred five."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
    rest = n % 100
    return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_word(rest))


@dataclass
class Fact:
    """One question with its answer, a statement that gives the answer, and (for arithmetic) a worked line."""

    question: str
    answer: str
    statement: str
    work: str | None = None  # e.g. "27 + 15 = 42"


def operand(rng: random.Random, digits: tuple[int, ...] = (1, 1, 2)) -> int:
    """A number of one or two digits (by default one digit twice as often)."""
    return rng.randint(0, 9) if rng.choice(digits) == 1 else rng.randint(10, 99)


def pick(rng: random.Random, templates, **values) -> str:
    return rng.choice(templates).format(**values)


# ---------------------------------------------------------------------------------------------------------
# Skills: each returns a Fact from a seeded rng


def add(rng):
    a, b = operand(rng), operand(rng)
    q = pick(
        rng,
        (
            "What is {a} + {b}?",
            "What is {a} plus {b}?",
            "{a} + {b} = ?",
            "Compute {a} + {b}.",
            "Add {a} and {b}.",
            "What is the sum of {a} and {b}?",
            "Find the sum of {a} and {b}.",
            "What do you get when you add {b} to {a}?",
            "What is {b} more than {a}?",
            "If you add {a} and {b}, what do you get?",
            "What is {a} increased by {b}?",
            "Calculate {a} plus {b}.",
            "How much is {a} plus {b}?",
            "What is the total of {a} and {b}?",
            "Please add {a} and {b}.",
        ),
        a=a,
        b=b,
    )
    s = pick(rng, ("{a} + {b} = {c}", "{a} plus {b} is {c}.", "The sum of {a} and {b} is {c}."), a=a, b=b, c=a + b)
    return Fact(q, str(a + b), s, f"{a} + {b} = {a + b}")


def subtract(rng):
    a, b = operand(rng), operand(rng)
    if a < b and rng.random() < 0.85:
        a, b = b, a
    q = pick(
        rng,
        (
            "What is {a} - {b}?",
            "What is {a} minus {b}?",
            "{a} - {b} = ?",
            "Compute {a} - {b}.",
            "Subtract {b} from {a}.",
            "What is {b} less than {a}?",
            "What is {a} take away {b}?",
            "What is the difference when {b} is subtracted from {a}?",
            "What is {a} decreased by {b}?",
            "Calculate {a} minus {b}.",
            "How much is {a} minus {b}?",
            "If you take {b} from {a}, what is left?",
        ),
        a=a,
        b=b,
    )
    s = pick(
        rng, ("{a} - {b} = {c}", "{a} minus {b} is {c}.", "{b} subtracted from {a} leaves {c}."), a=a, b=b, c=a - b
    )
    return Fact(q, str(a - b), s, f"{a} - {b} = {a - b}")


def multiply(rng):
    a, b = rng.randint(0, 10), rng.randint(0, 10)
    if rng.random() < 0.15:
        a = rng.randint(11, 25)
    if rng.random() < 0.5:
        a, b = b, a
    q = pick(
        rng,
        (
            "What is {a} * {b}?",
            "What is {a} times {b}?",
            "{a} * {b} = ?",
            "{a} x {b} = ?",
            "Compute {a} * {b}.",
            "Multiply {a} by {b}.",
            "What is the product of {a} and {b}?",
            "What is {a} multiplied by {b}?",
            "How much is {a} times {b}?",
            "What is {b} groups of {a}?",
        ),
        a=a,
        b=b,
    )
    s = pick(rng, ("{a} * {b} = {c}", "{a} times {b} is {c}.", "The product of {a} and {b} is {c}."), a=a, b=b, c=a * b)
    return Fact(q, str(a * b), s, f"{a} * {b} = {a * b}")


def divide(rng):
    b, c = rng.randint(1, 10), rng.randint(0, 10)
    a = b * c
    q = pick(
        rng,
        (
            "What is {a} / {b}?",
            "What is {a} divided by {b}?",
            "{a} / {b} = ?",
            "Divide {a} by {b}.",
            "How many times does {b} go into {a}?",
            "Share {a} equally among {b}. How many each?",
        ),
        a=a,
        b=b,
    )
    return Fact(q, str(c), f"{a} divided by {b} is {c}.", f"{a} / {b} = {c}")


def scale(rng):
    n = rng.randint(0, 50)
    kind = rng.choice(("double", "triple", "half", "square"))
    if kind == "double":
        q, a = (
            pick(rng, ("What is double {n}?", "What is twice {n}?", "Double {n}.", "What is {n} doubled?"), n=n),
            2 * n,
        )
        return Fact(q, str(a), f"Double {n} is {a}.", f"2 * {n} = {a}")
    if kind == "triple":
        n = n % 20
        q, a = pick(rng, ("What is triple {n}?", "What is three times {n}?", "Triple {n}."), n=n), 3 * n
        return Fact(q, str(a), f"Three times {n} is {a}.", f"3 * {n} = {a}")
    if kind == "half":
        n = 2 * rng.randint(0, 50)
        q, a = (
            pick(rng, ("What is half of {n}?", "Halve {n}.", "What is {n} divided by 2?", "Half of {n} is?"), n=n),
            n // 2,
        )
        return Fact(q, str(a), f"Half of {n} is {a}.", f"{n} / 2 = {a}")
    n = rng.randint(0, 12)
    q = pick(rng, ("What is {n} squared?", "What is the square of {n}?", "What is {n} times itself?"), n=n)
    return Fact(q, str(n * n), f"{n} squared is {n * n}.", f"{n} * {n} = {n * n}")


def compare(rng):
    a, b = rng.sample(range(0, 100 if rng.random() < 0.8 else 1000), 2)
    larger = rng.random() < 0.5
    word = rng.choice(("larger", "bigger", "greater", "higher") if larger else ("smaller", "lower", "less"))
    q = pick(
        rng,
        (
            "Which is {w}, {a} or {b}?",
            "Which number is {w}: {a} or {b}?",
            "What is the {w} of {a} and {b}?",
            "Of {a} and {b}, which is {w}?",
            "Pick the {w} number: {a}, {b}.",
            "Between {a} and {b}, which one is {w}?",
            "{a} or {b}: which is {w}?",
        ),
        w=word,
        a=a,
        b=b,
    )
    answer = max(a, b) if larger else min(a, b)
    return Fact(q, str(answer), f"{answer} is {word} than {a + b - answer}.")


def extreme(rng):
    numbers = rng.sample(range(0, 100), rng.randint(3, 5))
    largest = rng.random() < 0.5
    word = rng.choice(("largest", "biggest", "greatest", "highest") if largest else ("smallest", "lowest", "least"))
    shown = ", ".join(map(str, numbers))
    q = pick(
        rng,
        (
            "What is the {w} number in {s}?",
            "Which is the {w} of {s}?",
            "Find the {w} number: {s}.",
            "Here are some numbers: {s}. Which is the {w}?",
            "Of the numbers {s}, which is {w}?",
        ),
        w=word,
        s=shown,
    )
    answer = max(numbers) if largest else min(numbers)
    return Fact(q, str(answer), f"The {word} number in {shown} is {answer}.")


def neighbour(rng):
    n = rng.randint(0, 999 if rng.random() < 0.3 else 99)
    after = rng.random() < 0.5 or n == 0
    if after:
        q = pick(
            rng,
            (
                "What number comes after {n}?",
                "What is one more than {n}?",
                "What is the next number after {n}?",
                "Which number follows {n}?",
                "Count up one from {n}. What do you get?",
                "What is {n} + 1?",
            ),
            n=n,
        )
        return Fact(q, str(n + 1), f"The number after {n} is {n + 1}.", f"{n} + 1 = {n + 1}")
    q = pick(
        rng,
        (
            "What number comes before {n}?",
            "What is one less than {n}?",
            "Which number is just before {n}?",
            "What is the number before {n}?",
            "What is {n} - 1?",
        ),
        n=n,
    )
    return Fact(q, str(n - 1), f"The number before {n} is {n - 1}.", f"{n} - 1 = {n - 1}")


def count(rng):
    kind = rng.random()
    if kind < 0.4:
        items = [rng.choice(WORDS + COLORS) for _ in range(rng.randint(1, 8))]
        shown = rng.choice((" ", ", ")).join(items)
        q = pick(
            rng, ("How many words are in this list: {s}?", "Count the words: {s}.", "How many items: {s}?"), s=shown
        )
        return Fact(q, str(len(items)), f"There are {len(items)} words in: {shown}.")
    if kind < 0.7:
        numbers = [rng.randint(0, 99) for _ in range(rng.randint(1, 8))]
        shown = ", ".join(map(str, numbers))
        q = pick(
            rng, ("How many numbers are in the list {s}?", "Count the numbers: {s}.", "How many numbers: {s}?"), s=shown
        )
        return Fact(q, str(len(numbers)), f"The list {shown} has {len(numbers)} numbers.")
    target, other = rng.sample(WORDS, 2)
    items = [target] * rng.randint(0, 5) + [other] * rng.randint(1, 4)
    rng.shuffle(items)
    shown = " ".join(items)
    q = pick(rng, ("How many times does '{t}' appear in: {s}?", "Count '{t}' in: {s}."), t=target, s=shown)
    n = items.count(target)
    return Fact(q, str(n), f"'{target}' appears {n} time{'' if n == 1 else 's'} in: {shown}.")


def order(rng):
    numbers = rng.sample(range(0, 100), rng.randint(2, 5))
    up = rng.random() < 0.5
    shown = ", ".join(map(str, numbers))
    answer = ", ".join(map(str, sorted(numbers, reverse=not up)))
    q = pick(
        rng,
        ("Sort {s} from smallest to largest.", "Put {s} in increasing order.", "Order these from low to high: {s}.")
        if up
        else (
            "Sort {s} from largest to smallest.",
            "Put {s} in decreasing order.",
            "Order these from high to low: {s}.",
        ),
        s=shown,
    )
    return Fact(q, answer, f"{shown} in {'increasing' if up else 'decreasing'} order is {answer}.")


def copy(rng):
    kind = rng.random()
    if kind < 0.35:
        n = rng.randint(0, 99999)
        q = pick(rng, ("Repeat the number {n}.", "Copy this number: {n}.", "Say {n}.", "Write the number {n}."), n=n)
        return Fact(q, str(n), f"The number is {n}.")
    if kind < 0.7:
        words = " ".join(rng.choice(WORDS + COLORS) for _ in range(rng.randint(1, 4)))
        q = pick(rng, ("Repeat after me: {w}", "Copy this: {w}", "Say '{w}'.", "Write exactly: {w}"), w=words)
        return Fact(q, words, f"You said: {words}.")
    items = rng.sample(WORDS, rng.randint(3, 6))
    i = rng.randrange(len(items))
    shown = " ".join(items)
    q = pick(rng, ("What is the {o} word in '{s}'?", "In '{s}', which word is {o}?"), o=ORDINALS[i], s=shown)
    return Fact(q, items[i], f"The {ORDINALS[i]} word in '{shown}' is {items[i]}.")


def digits(rng):
    n = rng.randint(10, 999)
    text = str(n)
    kind = rng.choice(("first", "last", "count", "sum", "tens"))
    if kind == "first":
        return Fact(
            pick(rng, ("What is the first digit of {n}?", "Which digit does {n} start with?"), n=n),
            text[0],
            f"The first digit of {n} is {text[0]}.",
        )
    if kind == "last":
        return Fact(
            pick(rng, ("What is the last digit of {n}?", "What is the ones digit of {n}?"), n=n),
            text[-1],
            f"The last digit of {n} is {text[-1]}.",
        )
    if kind == "count":
        return Fact(
            pick(rng, ("How many digits does {n} have?", "How many digits are in {n}?"), n=n),
            str(len(text)),
            f"{n} has {len(text)} digits.",
        )
    if kind == "sum":
        total = sum(map(int, text))
        work = " + ".join(text) + f" = {total}"
        return Fact(
            pick(rng, ("What is the sum of the digits of {n}?", "Add up the digits of {n}."), n=n),
            str(total),
            f"The digits of {n} add up to {total}.",
            work,
        )
    return Fact(
        pick(rng, ("What is the tens digit of {n}?", "Which digit is in the tens place of {n}?"), n=n),
        text[-2],
        f"The tens digit of {n} is {text[-2]}.",
    )


def words(rng):
    n = rng.randint(0, 100 if rng.random() < 0.8 else 999)
    if rng.random() < 0.5:
        q = pick(rng, ("Write {n} in words.", "How do you say {n} in words?", "Spell out {n}."), n=n)
        return Fact(q, number_word(n), f"{n} is written {number_word(n)}.")
    q = pick(rng, ("What number is '{w}'?", "Write '{w}' as a number.", "'{w}' in digits is?"), w=number_word(n))
    return Fact(q, str(n), f"{number_word(n)} is {n}.")


def spoken_arithmetic(rng):
    """Arithmetic with the numbers written as words, answered in digits."""
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    if rng.random() < 0.5:
        q = pick(
            rng,
            ("What is {a} plus {b}?", "Add {a} and {b}.", "What is {a} and {b} together?"),
            a=number_word(a),
            b=number_word(b),
        )
        return Fact(q, str(a + b), f"{number_word(a)} plus {number_word(b)} is {a + b}.", f"{a} + {b} = {a + b}")
    a, b = max(a, b), min(a, b)
    q = pick(rng, ("What is {a} minus {b}?", "Take {b} from {a}."), a=number_word(a), b=number_word(b))
    return Fact(q, str(a - b), f"{number_word(a)} minus {number_word(b)} is {a - b}.", f"{a} - {b} = {a - b}")


def story(rng):
    """A one- or two-step word problem about people and things."""
    name, other = rng.sample(NAMES, 2)
    thing = rng.choice(THINGS)
    kind = rng.random()
    if kind < 0.3:
        a, b = rng.randint(1, 40), rng.randint(1, 30)
        q = pick(
            rng,
            (
                "{n} has {a} {t}. {o} gives {n} {b} more. How many {t} does {n} have now?",
                "{n} has {a} {t} and {g} {b} more. How many {t} does {n} have now?",
                "{n} had {a} {t} and bought {b} more. How many {t} does {n} have?",
                "There are {a} {t} in the {c} and {b} {t} on the table. How many {t} are there in all?",
                "{n} picked {a} {t} in the morning and {b} in the afternoon. How many {t} did {n} pick?",
                "{n} has {a} {t} and {o} has {b} {t}. How many {t} do they have together?",
            ),
            n=name,
            o=other,
            t=thing,
            a=a,
            b=b,
            c=rng.choice(CONTAINERS),
            g=rng.choice(GAIN_VERBS),
        )
        return Fact(q, str(a + b), f"{name} has {a + b} {thing}.", f"{a} + {b} = {a + b}")
    if kind < 0.6:
        a = rng.randint(2, 50)
        b = rng.randint(1, a)
        q = pick(
            rng,
            (
                "{n} had {a} {t} and gave {b} to {o}. How many {t} does {n} have left?",
                "There were {a} {t} in the {c}. {n} took {b}. How many are left?",
                "{n} has {a} {t} and loses {b}. How many {t} are left?",
                "{n} baked {a} {t} and ate {b}. How many {t} remain?",
                "{n} has {a} {t}. {o} has {b}. How many more {t} does {n} have than {o}?",
                "{n} has {a} {t} and {v} {b} of them. How many {t} does {n} have now?",
            ),
            n=name,
            o=other,
            t=thing,
            a=a,
            b=b,
            c=rng.choice(CONTAINERS),
            v=rng.choice(LOSS_VERBS),
        )
        return Fact(q, str(a - b), f"{name} has {a - b} {thing} left.", f"{a} - {b} = {a - b}")
    if kind < 0.8:
        a, b, k = rng.randint(2, 9), rng.randint(2, 9), rng.randrange(len(CONTAINERS))
        q = pick(
            rng,
            (
                "Each {c} holds {a} {t}. How many {t} are in {b} {cs}?",
                "{n} buys {b} packs of {t} with {a} in each pack. How many {t} does {n} buy?",
                "There are {b} rows of {t} with {a} in each row. How many {t} are there?",
            ),
            n=name,
            t=thing,
            a=a,
            b=b,
            c=CONTAINERS[k],
            cs=CONTAINER_PLURALS[k],
        )
        return Fact(q, str(a * b), f"There are {a * b} {thing}.", f"{b} * {a} = {a * b}")
    a, b, c = rng.randint(5, 30), rng.randint(1, 20), rng.randint(1, 5)
    q = pick(
        rng,
        (
            "{n} has {a} {t}, finds {b} more, then gives away {c}. How many {t} does {n} have?",
            "A {p} has {a} {t}. {b} more arrive and {c} leave. How many {t} are in the {p} now?",
        ),
        n=name,
        t=thing,
        a=a,
        b=b,
        c=c,
        p=rng.choice(PLACES),
    )
    return Fact(q, str(a + b - c), f"In the end there are {a + b - c} {thing}.", f"{a} + {b} - {c} = {a + b - c}")


def animals(rng):
    animal = rng.choice(ANIMALS)
    a, b = rng.randint(1, 30), rng.randint(1, 30)
    place = rng.choice(PLACES)
    if rng.random() < 0.5:
        q = f"There are {a} {animal} in the {place} and {b} more come. How many {animal} are there now?"
        return Fact(q, str(a + b), f"There are {a + b} {animal} in the {place}.", f"{a} + {b} = {a + b}")
    a, b = max(a, b), min(a, b)
    q = f"There are {a} {animal} in the {place}. {b} of them leave. How many {animal} stay?"
    return Fact(q, str(a - b), f"{a - b} {animal} stay in the {place}.", f"{a} - {b} = {a - b}")


def two_step(rng):
    a, b, c = operand(rng), operand(rng, (1,)), operand(rng, (1,))
    kind = rng.choice(("+-", "++", "*+"))
    if kind == "+-":
        c = min(c, a + b)
        q = pick(rng, ("What is {a} + {b} - {c}?", "Add {a} and {b}, then subtract {c}."), a=a, b=b, c=c)
        return Fact(
            q, str(a + b - c), f"{a} + {b} - {c} = {a + b - c}", f"{a} + {b} = {a + b}, {a + b} - {c} = {a + b - c}"
        )
    if kind == "++":
        q = pick(rng, ("What is {a} + {b} + {c}?", "What is the sum of {a}, {b} and {c}?"), a=a, b=b, c=c)
        return Fact(
            q, str(a + b + c), f"{a} + {b} + {c} = {a + b + c}", f"{a} + {b} = {a + b}, {a + b} + {c} = {a + b + c}"
        )
    a = a % 10
    q = pick(rng, ("What is {a} * {b} + {c}?", "Multiply {a} by {b}, then add {c}."), a=a, b=b, c=c)
    return Fact(
        q, str(a * b + c), f"{a} * {b} + {c} = {a * b + c}", f"{a} * {b} = {a * b}, {a * b} + {c} = {a * b + c}"
    )


def difference(rng):
    a, b = operand(rng), operand(rng)
    q = pick(
        rng,
        (
            "What is the difference between {a} and {b}?",
            "How far apart are {a} and {b}?",
            "How much bigger is the larger of {a} and {b}?",
        ),
        a=a,
        b=b,
    )
    hi, lo = max(a, b), min(a, b)
    return Fact(q, str(hi - lo), f"The difference between {a} and {b} is {hi - lo}.", f"{hi} - {lo} = {hi - lo}")


def sequence(rng):
    start, step = rng.randint(0, 30), rng.randint(1, 10)
    if rng.random() < 0.2:
        start, step = rng.randint(40, 90), -rng.randint(1, 5)
    terms = [start + i * step for i in range(rng.randint(3, 5))]
    shown = ", ".join(map(str, terms))
    nxt = terms[-1] + step
    q = pick(
        rng, ("What comes next: {s}, ...?", "Continue the pattern: {s}.", "What is the next number in {s}?"), s=shown
    )
    return Fact(
        q, str(nxt), f"After {shown} comes {nxt}.", f"{terms[-1]} {'+' if step > 0 else '-'} {abs(step)} = {nxt}"
    )


def parity(rng):
    n = rng.randint(0, 99)
    kind = "even" if n % 2 == 0 else "odd"
    q = pick(rng, ("Is {n} even or odd?", "Is {n} an even number or an odd number?"), n=n)
    return Fact(q, kind, f"{n} is an {kind} number.")


def rounding(rng):
    n = rng.randint(0, 999)
    if n < 100 or rng.random() < 0.6:
        n %= 100
        r = int((n + 5) // 10 * 10)
        q = pick(rng, ("Round {n} to the nearest ten.", "What is {n} rounded to the nearest 10?"), n=n)
        return Fact(q, str(r), f"{n} rounded to the nearest ten is {r}.")
    r = int((n + 50) // 100 * 100)
    q = pick(rng, ("Round {n} to the nearest hundred.", "What is {n} rounded to the nearest 100?"), n=n)
    return Fact(q, str(r), f"{n} rounded to the nearest hundred is {r}.")


def check(rng):
    """Is a claim right? Teaches telling right answers from wrong ones (what a reward model must do)."""
    fact = rng.choice((add, subtract, multiply, compare, neighbour))(rng)
    right = rng.random() < 0.5
    claimed = fact.answer
    if not right:
        claimed = str(int(fact.answer) + rng.choice((-1, 1)) * rng.randint(1, 10))
    q = pick(
        rng,
        (
            "{q} Is {c} correct?",
            "Someone says the answer to '{q}' is {c}. Are they right?",
            "{q} I think it is {c}. Right?",
        ),
        q=fact.question,
        c=claimed,
    )
    reply = "Yes, it is " + fact.answer + "." if right else f"No, it is {fact.answer}, not {claimed}."
    return Fact(
        q,
        reply,
        f"The answer to '{fact.question}' is {fact.answer}, not {claimed}."
        if not right
        else f"The answer to '{fact.question}' is {fact.answer}.",
    )


SKILLS = {  # skill -> weight in the corpus
    add: 12,
    subtract: 10,
    multiply: 8,
    divide: 3,
    scale: 4,
    compare: 7,
    extreme: 4,
    neighbour: 4,
    count: 4,
    order: 3,
    copy: 4,
    digits: 3,
    words: 3,
    spoken_arithmetic: 3,
    story: 10,
    animals: 3,
    two_step: 4,
    difference: 4,
    sequence: 3,
    parity: 2,
    rounding: 2,
    check: 4,
}

# ---------------------------------------------------------------------------------------------------------
# Layouts


def chat(messages: list[tuple[str, str]]) -> str:
    """ChatML, as llmrl's built-in chat template writes it."""
    return "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in messages)


def reply(rng: random.Random, fact: Fact) -> str:
    """The assistant's answer in one of the styles that chat data use."""
    style = rng.random()
    numeric = fact.answer.lstrip("-").isdigit()
    if style < 0.3 or not numeric:
        return fact.answer
    if style < 0.5:
        return pick(rng, ("The answer is {a}.", "It is {a}.", "{a}.", "The answer is {a}"), a=fact.answer)
    if style < 0.85 and fact.work:
        return f"{fact.work}\n#### {fact.answer}"
    if style < 0.9:
        return f"#### {fact.answer}"
    return fact.statement if fact.answer in fact.statement else fact.answer


def document(rng: random.Random) -> str:
    """One corpus document: a fact as a statement, a plain question and answer, or a chat of 1-3 exchanges."""
    skills, weights = zip(*SKILLS.items(), strict=True)
    if rng.random() < 0.04:
        return sentence(rng)
    layout = rng.random()
    fact = rng.choices(skills, weights)[0](rng)
    if layout < 0.12:
        return fact.statement
    if layout < 0.3:
        form = rng.choice(
            ("Q: {q}\nA: {a}", "Question: {q}\nAnswer: {a}", "{q}\n{a}", "{q} {a}", "Problem: {q}\nSolution: {a}")
        )
        return form.format(q=fact.question, a=reply(rng, fact) if rng.random() < 0.4 else fact.answer)
    messages = []
    if rng.random() < 0.2:
        messages.append(("system", rng.choice(SYSTEM_PROMPTS)))
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        messages += [("user", fact.question), ("assistant", reply(rng, fact))]
        fact = rng.choices(skills, weights)[0](rng)
    return chat(messages)


def sentence(rng: random.Random) -> str:
    """A plain English sentence with no numbers: English text beyond the skill templates."""
    name = rng.choice(NAMES)
    return pick(
        rng,
        (
            "{n} went to the {p} with a {c} of {t}.",
            "The {a} in the {p} are {k} today.",
            "{n} likes {k} {t} and {w} music.",
            "In the {w}, {n} reads a story about {a}.",
            "A {k} {w} is near the {p}.",
        ),
        n=name,
        p=rng.choice(PLACES),
        c=rng.choice(CONTAINERS),
        t=rng.choice(THINGS),
        a=rng.choice(ANIMALS),
        k=rng.choice(COLORS),
        w=rng.choice(WORDS),
    )


def word_list() -> list[str]:
    """Every word the corpus draws from, for the tokenizer to learn."""
    words = [*NAMES, *THINGS, *ANIMALS, *PLACES, *CONTAINERS, *CONTAINER_PLURALS, *COLORS, *WORDS, *ONES, *TENS[2:]]
    return sorted(set(words + [*GAIN_VERBS, *LOSS_VERBS, *ORDINALS]))


def documents(seed: int, count: int):
    """``count`` documents from ``seed`` (the same on every machine)."""
    rng = random.Random(seed)
    for _ in range(count):
        yield document(rng)
