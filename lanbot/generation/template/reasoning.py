"""Reasoning without a tool: step-by-step answers whose final answers this code computes.

Letter counting by spelling the word out, comparing decimals digit by digit, ordering puzzles,
ages, days of the week, unit reasoning and number patterns. Each generator returns
(question, steps, final answer); the writer wraps them in the identity's style.
"""

from __future__ import annotations

import random
from decimal import Decimal

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
RELATIONS = (("taller", "tallest", "shortest"), ("older", "oldest", "youngest"), ("faster", "fastest", "slowest"),
             ("heavier", "heaviest", "lightest"))
UNITS = (  # (big unit, small unit, small per big)
    ("hours", "minutes", 60), ("minutes", "seconds", 60), ("days", "hours", 24), ("weeks", "days", 7),
    ("kilometers", "meters", 1000), ("meters", "centimeters", 100), ("kilograms", "grams", 1000),
    ("liters", "milliliters", 1000), ("feet", "inches", 12), ("dozen", "items", 12),
)


def count_letters(rng: random.Random, v: dict) -> tuple[str, list[str], str]:
    word = rng.choice(v["letter_words"]).lower()
    letter = rng.choice(sorted(set(word))) if rng.random() < 0.9 else rng.choice("zqxjv")
    q = rng.choice((f'How many "{letter}"s are in "{word}"? Count carefully.',
                    f'How many times does the letter "{letter}" appear in "{word}"?',
                    f'Count the "{letter}"s in "{word}" without a calculator.'))
    steps, n = [f"Spell it out letter by letter: {'-'.join(word)}."], 0
    marks = []
    for ch in word:
        if ch == letter:
            n += 1
            marks.append(f"{ch.upper()}({n})")
        else:
            marks.append(ch)
    steps.append(f'Mark each "{letter}" as I go: {" ".join(marks)}.' if n else f'None of those {len(word)} letters is "{letter}".')
    final = f'"{word}" has {n} "{letter}"{"" if n == 1 else "s"}.'
    return q, steps, final


def compare_decimals(rng: random.Random, v: dict) -> tuple[str, list[str], str]:
    whole = rng.randint(0, 20)
    a = Decimal(f"{whole}.{rng.randint(1, 99)}")
    b = Decimal(f"{whole}.{rng.randint(1, 9)}") if rng.random() < 0.6 else Decimal(f"{rng.randint(0, 20)}.{rng.randint(1, 999)}")
    if a == b:
        b += Decimal("0.1")
    x, y = (a, b) if rng.random() < 0.5 else (b, a)
    x, y = Decimal(format(x.normalize(), "f")), Decimal(format(y.normalize(), "f"))
    q = rng.choice((f"Which is bigger, {x} or {y}?", f"Is {x} larger than {y}?", f"Compare {x} and {y}: which is greater?"))
    places = max(-x.as_tuple().exponent, -y.as_tuple().exponent)
    xs, ys = f"{x:.{places}f}", f"{y:.{places}f}"
    steps = [f"Line the numbers up with the same number of decimal places: {xs} and {ys}."]
    if int(x) != int(y):
        steps.append(f"The whole-number parts differ: {int(x)} vs {int(y)}, and that settles it.")
    else:
        steps.append(f"The whole parts are both {int(x)}, so compare the decimals: {xs.split('.')[1]} vs {ys.split('.')[1]}.")
    big = max(x, y)
    final = f"{big} is bigger." if not q.startswith("Is") else (f"Yes, {x} is larger than {y}." if x > y else f"No, {y} is larger than {x}.")
    return q, steps, final


def order_puzzle(rng: random.Random, v: dict) -> tuple[str, list[str], str]:
    people = rng.sample(v["names"], rng.randint(3, 4))  # people[0] is the most, the true order
    rel, most, least = rng.choice(RELATIONS)
    facts = [f"{people[i]} is {rel} than {people[i + 1]}" for i in range(len(people) - 1)]
    rng.shuffle(facts)
    ask_most = rng.random() < 0.6
    q = f"{'. '.join(facts)}. Who is the {most if ask_most else least}?"
    steps = [f"Chain the facts from the {most} down: {' > '.join(people)}."]
    steps.append(f"Each fact fits that order, and there is only one person at the {'top' if ask_most else 'bottom'}.")
    final = f"{people[0] if ask_most else people[-1]} is the {most if ask_most else least}."
    return q, steps, final


def ages(rng: random.Random, v: dict) -> tuple[str, list[str], str]:
    a, b = rng.sample(v["names"], 2)
    age_b, diff, years = rng.randint(4, 60), rng.randint(2, 15), rng.randint(2, 20)
    q = f"{a} is {diff} years older than {b}. {b} is {age_b}. How old will {a} be in {years} years?"
    now = age_b + diff
    steps = [f"{a} is {age_b} + {diff} = {now} now.", f"In {years} years: {now} + {years} = {now + years}."]
    return q, steps, f"{a} will be {now + years}."


def weekday(rng: random.Random, v: dict) -> tuple[str, list[str], str]:
    start, n = rng.randrange(7), rng.randint(2, 400)
    q = rng.choice((f"If today is {DAYS[start]}, what day will it be in {n} days?",
                    f"Today's a {DAYS[start]}. Which day of the week is {n} days from now?"))
    weeks, rest = divmod(n, 7)
    steps = [f"Every 7 days the weekday repeats, so only the remainder matters: {n} = 7 × {weeks} + {rest}."]
    steps.append(f"Counting {rest} day{'s' if rest != 1 else ''} on from {DAYS[start]} lands on {DAYS[(start + rest) % 7]}."
                 if rest else f"A whole number of weeks brings us back to {DAYS[start]}.")
    return q, steps, f"It will be {DAYS[(start + rest) % 7]}."


def units(rng: random.Random, v: dict) -> tuple[str, list[str], str]:
    big, small, k = rng.choice(UNITS)
    x = rng.choice((rng.randint(2, 12), rng.randint(3, 24) / 2))  # never 1: "1 kilometers"
    xs = f"{x:g}"
    total = Decimal(xs) * k
    q = rng.choice((f"How many {small} are in {xs} {big}?", f"Convert {xs} {big} to {small} in your head."))
    out = format(total.normalize(), "f")
    one = {"feet": "foot", "dozen": "dozen"}.get(big, big[:-1])
    steps = [f"One {one} is {k} {small}." if big != "dozen" else "A dozen is 12.", f"So {xs} × {k} = {out}."]
    return q, steps, f"{xs} {big} is {out} {small}."


def sequence(rng: random.Random, v: dict) -> tuple[str, list[str], str]:
    start = rng.randint(1, 30)
    if rng.random() < 0.6:
        d = rng.choice((2, 3, 4, 5, 7, 9, 11, -3))
        seq = [start + d * i for i in range(5)]
        steps = [f"Each number is {'+' if d > 0 else '-'}{abs(d)} from the one before: "
                 + ", ".join(f"{seq[i]} → {seq[i + 1]}" for i in range(3)) + ".", f"So next: {seq[3]} {'+' if d > 0 else '-'} {abs(d)} = {seq[4]}."]
    else:
        r, first = rng.choice((2, 3)), rng.randint(1, 5)
        seq = [first * r ** i for i in range(5)]
        steps = [f"Each number is {r} times the one before.", f"So next: {seq[3]} × {r} = {seq[4]}."]
    q = f"What comes next: {', '.join(map(str, seq[:4]))}, ...?"
    return q, steps, f"The next number is {seq[4]}."


def apples(rng: random.Random, v: dict) -> tuple[str, list[str], str]:
    name = rng.choice(v["names"])
    fruit = rng.choice(("apples", "oranges", "marbles", "stickers", "cookies", "pencils"))
    have, give, get = rng.randint(5, 40), rng.randint(1, 5), rng.randint(1, 20)
    give = min(give, have)
    q = f"{name} has {have} {fruit}, gives away {give}, then gets {get} more. How many {fruit} does {name} have now?"
    steps = [f"Start with {have}.", f"After giving away {give}: {have} − {give} = {have - give}.",
             f"After getting {get} more: {have - give} + {get} = {have - give + get}."]
    return q, steps, f"{name} has {have - give + get} {fruit}."


REASONING = (count_letters, compare_decimals, order_puzzle, ages, weekday, units, sequence, apples)
WEIGHTS = (22, 14, 14, 10, 10, 12, 10, 8)
