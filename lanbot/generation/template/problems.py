"""Word problems for the calculator types, each solved by real calls to lanbot's calculator.

A problem generator draws its numbers from the rng, states the question, and builds a `Chain` of calls:
each call's expression may contain an earlier call's output (so a multi-step chain really reuses its
results), every output is `calculate(expr)`, and the final answer is worded from those outputs.
SINGLE generators need one call; CHAINS need two to four.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from lanbot.core.calculator import calculate


@dataclass
class Call:
    plan: str   # the step as a plan line: "add up the items"
    lead: str   # what the assistant says right before the call
    expr: str
    out: str


@dataclass
class Chain:
    question: str = ""
    final: str = ""
    calls: list[Call] = field(default_factory=list)
    follow: Chain | None = None  # a follow-up question whose call builds on this chain's result

    def call(self, plan: str, lead: str, expr: str) -> str:
        out = calculate(expr)
        self.calls.append(Call(plan, lead, expr, out))
        return out


def follow_up(question: str, lead: str, expr: str, final: str) -> Chain:
    """A follow-up turn: one call (built on an earlier output) and its answer; `final` has {r} for the result."""
    c = Chain(question=question)
    out = c.call("", lead, expr)
    c.final = final.format(r=out, money=money(out), rounded=rounded(out))
    return c


def money(out: str) -> str:
    """A calculator output as money: '$12.50', or '$12.675 (about $12.68)' past two decimals."""
    d = Decimal(out)
    if -d.as_tuple().exponent > 2:
        return f"${out} (about ${d.quantize(Decimal('0.01'), ROUND_HALF_UP):,})"
    return f"${d:.2f}" if "." in out else f"${out}"


def count_of(n: object, plural: str) -> str:
    """'1 year', '3 years', '0.75 cans': the singular only for exactly one."""
    return f"{n} {plural[:-1] if str(n) in ('1', '1.0') else plural}"


def rounded(out: str, places: int = 2, unit: str = "") -> str:
    """'3.10686' -> '3.10686 (about 3.11)'; short outputs as they are. `unit` follows each number ('°C', '%')."""
    d = Decimal(out)
    if -d.as_tuple().exponent > places:
        return f"{out}{unit} (about {d.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)}{unit})"
    return f"{out}{unit}"


def price(rng: random.Random, lo: float, hi: float) -> str:
    return f"{rng.uniform(lo, hi):.2f}"


# ---- one call ---------------------------------------------------------------------------------------

def split_bill(rng, v) -> Chain:
    c, total, n = Chain(), price(rng, 24, 380), rng.randint(2, 9)
    meal = rng.choice(v["meals"])
    c.question = rng.choice((
        f"Our {meal} came to ${total} and there are {n} of us. How much does each person pay if we split it evenly?",
        f"Split a ${total} bill evenly between {n} people: how much each?",
        f"{n} friends share a ${total} {meal} bill equally. What's each share?",
    ))
    out = c.call("divide the total by the number of people", "Dividing the bill evenly:", f"{total} / {n}")
    c.final = f"Each of the {n} people pays {money(out)}."
    more = rng.randint(n + 1, n + 4)
    c.follow = follow_up(f"What if {more - n} more people join and we split the same bill?",
                         f"Same ${total}, now {more} ways:", f"{total} / {more}", f"Then each of the {more} pays {{money}}.")
    return c


def tip(rng, v) -> Chain:
    c, bill, pct = Chain(), price(rng, 18, 260), rng.choice((10, 12, 15, 18, 20, 22, 25))
    c.question = rng.choice((
        f"What's the tip at {pct}% on a ${bill} bill?", f"How much should I tip at {pct}% if the check is ${bill}?",
        f"The bill is ${bill}. I want to leave {pct}%. How much is the tip?",
    ))
    out = c.call(f"take {pct}% of the bill", f"The tip is {pct}% of ${bill}:", f"{bill} * {pct} / 100")
    c.final = f"{'An' if str(pct)[0] == '8' or pct in (11, 18) else 'A'} {pct}% tip on ${bill} is {money(out)}."
    c.follow = follow_up(rng.choice(("So what's the total with the tip?", "And the whole thing including tip?")),
                         f"Bill plus the {out} tip:", f"{bill} + {out}", "The total comes to {money}.")
    return c


def discount(rng, v) -> Chain:
    c, p, pct = Chain(), price(rng, 15, 900), rng.choice((10, 15, 20, 25, 30, 35, 40, 50, 60, 70))
    item = rng.choice(v["shop_items"])
    c.question = rng.choice((
        f"A {item} costs ${p} and is {pct}% off. What's the sale price?",
        f"How much is a ${p} {item} after a {pct}% discount?",
        f"There's {pct}% off a {item} listed at ${p}. What will I pay?",
    ))
    out = c.call(f"multiply the price by {100 - pct}%", f"After {pct}% off, I pay {100 - pct}% of the price:",
                 f"{p} * (1 - {pct} / 100)")
    c.final = f"The {item} costs {money(out)} after the {pct}% discount."
    tax = rng.choice((5, 6, 7, 8, 10, 20))
    c.follow = follow_up(f"And with {tax}% sales tax on the sale price?", f"Adding {tax}% to {out}:",
                         f"{out} * (1 + {tax} / 100)", "With tax it's {money}.")
    return c


CONVERSIONS = (  # (from, to, factor expression, how)
    ("kilometers", "miles", "* 0.621371", "1 km is about 0.621371 miles"),
    ("miles", "kilometers", "* 1.609344", "1 mile is 1.609344 km"),
    ("pounds", "kilograms", "* 0.45359237", "1 lb is 0.45359237 kg"),
    ("kilograms", "pounds", "/ 0.45359237", "1 lb is 0.45359237 kg"),
    ("inches", "centimeters", "* 2.54", "1 inch is 2.54 cm"),
    ("feet", "meters", "* 0.3048", "1 foot is 0.3048 m"),
    ("US gallons", "liters", "* 3.785411784", "1 US gallon is 3.785411784 liters"),
    ("cups", "milliliters", "* 236.588", "1 US cup is about 236.588 ml"),
    ("ounces", "grams", "* 28.349523125", "1 ounce is 28.349523125 g"),
)


def convert(rng, v) -> Chain:
    c = Chain()
    if rng.random() < 0.25:
        t = rng.randint(-20, 110)
        if rng.random() < 0.5:
            c.question = f"Convert {t}°F to Celsius."
            out = c.call("apply C = (F - 32) * 5 / 9", "Using C = (F - 32) × 5/9:", f"({t} - 32) * 5 / 9")
            c.final = f"{t}°F is {rounded(out, 1, '°C')}."
        else:
            c.question = rng.choice((f"What is {t}°C in Fahrenheit?", f"Convert {t} degrees Celsius to Fahrenheit."))
            out = c.call("apply F = C * 9 / 5 + 32", "Using F = C × 9/5 + 32:", f"{t} * 9 / 5 + 32")
            c.final = f"{t}°C is {rounded(out, 1, '°F')}."
        return c
    src, dst, factor, how = rng.choice(CONVERSIONS)
    x = rng.choice((str(rng.randint(2, 500)), f"{rng.uniform(1, 120):.1f}"))
    c.question = rng.choice((f"How many {dst} is {x} {src}?", f"Convert {x} {src} to {dst}.",
                             f"What's {x} {src} in {dst}?"))
    out = c.call(f"convert {src} to {dst}", f"{how[0].upper()}{how[1:]}, so:", f"{x} {factor}")
    c.final = f"{x} {src} is {rounded(out)} {dst}."
    return c


def simple_interest(rng, v) -> Chain:
    c, p, r, t = Chain(), str(rng.choice(range(500, 20001, 250))), rng.choice((2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7)), rng.randint(1, 12)
    c.question = f"What's the simple interest on ${p} at {r}% a year for {count_of(t, 'years')}?"
    out = c.call("multiply principal, rate and time", "Simple interest = principal × rate × years:", f"{p} * {r} / 100 * {t}")
    c.final = f"The simple interest is {money(out)}."
    return c


def compound(rng, v) -> Chain:
    c, p, r, t = Chain(), str(rng.choice(range(1000, 50001, 500))), rng.choice((2, 3, 3.5, 4, 4.5, 5, 6, 7, 8)), rng.randint(2, 25)
    c.question = rng.choice((
        f"If I invest ${p} at {r}% compounded yearly, how much will I have after {t} years?",
        f"${p} grows at {r}% per year, compounded annually. What's it worth in {t} years?",
    ))
    out = c.call("compound the principal yearly", f"Compounding yearly: {p} × (1 + {r}/100)^{t}:",
                 f"{p} * (1 + {r} / 100) ** {t}")
    c.final = f"After {t} years you'd have {money(out)}."
    c.follow = follow_up("How much of that is interest?", "Interest = final balance − what you put in:",
                         f"{out} - {p}", "The interest earned is {money}.")
    return c


def area(rng, v) -> Chain:
    c = Chain()
    kind = rng.randrange(3)
    if kind == 0:
        a, b, room = f"{rng.uniform(2, 15):.1f}", f"{rng.uniform(2, 12):.1f}", rng.choice(v["rooms"])
        c.question = f"My {room} is {a} m by {b} m. What's the floor area?"
        out = c.call("multiply length by width", "Area of a rectangle = length × width:", f"{a} * {b}")
        c.final = f"The {room} is {rounded(out)} square meters."
    elif kind == 1:
        r = rng.choice((str(rng.randint(1, 30)), f"{rng.uniform(0.5, 20):.1f}"))
        c.question = rng.choice((f"What's the area of a circle with radius {r} cm?",
                                 f"A round table has a radius of {r} cm. How big is its surface?"))
        out = c.call("apply pi * r^2", "Area = π × r², with π ≈ 3.14159:", f"3.14159 * {r} ** 2")
        c.final = f"The area is {rounded(out)} square centimeters."
    else:
        b, h = rng.randint(3, 60), rng.randint(3, 60)
        c.question = f"Find the area of a triangle with base {b} and height {h}."
        out = c.call("halve base times height", "Area of a triangle = ½ × base × height:", f"0.5 * {b} * {h}")
        c.final = f"The triangle's area is {out} square units."
    return c


def speed(rng, v) -> Chain:
    c, kind = Chain(), rng.randrange(3)
    trip = rng.choice(v["trips"])
    if kind == 0:
        d, t = rng.randint(5, 600), rng.choice((0.5, 1.5, 2, 2.5, 3, 4, 5.5, 6))
        c.question = f"My {trip} was {d} km and took {t} hours. What was my average speed?"
        out = c.call("divide distance by time", "Average speed = distance ÷ time:", f"{d} / {t}")
        c.final = f"Your average speed was {rounded(out)} km/h."
    elif kind == 1:
        d, s = rng.randint(10, 900), rng.randint(8, 120)
        c.question = f"How long does a {d} km {trip} take at {s} km/h?"
        out = c.call("divide distance by speed", "Time = distance ÷ speed:", f"{d} / {s}")
        c.final = f"It takes {rounded(out)} hours."
    else:
        s, t = rng.randint(4, 130), rng.choice((0.25, 0.75, 1.5, 2, 3.5, 4, 7))
        c.question = f"If I go {s} km/h for {t} hours, how far do I get?"
        out = c.call("multiply speed by time", "Distance = speed × time:", f"{s} * {t}")
        c.final = f"You'd cover {out} km."
    return c


def letters(rng, v) -> Chain:
    c, word = Chain(), rng.choice(v["letter_words"])
    if rng.random() < 0.3:
        c.question = rng.choice((f'How many letters are in "{word}"?', f'What is the length of the word "{word}"?'))
        out = c.call("measure the word's length", "Counting every character:", f'len("{word}")')
        c.final = f'"{word}" has {out} letters.'
        return c
    pool = sorted(set(word.lower()))
    letter = rng.choice(pool) if rng.random() < 0.9 else rng.choice("zqxjkvwy")
    c.question = rng.choice((f'How many "{letter}"s are in "{word}"?', f'Count the letter {letter} in "{word}".',
                             f'How many times does "{letter}" appear in the word "{word}"?'))
    text = word.lower() if word != word.lower() else word
    expr = f'"{text}".count("{letter}")'
    out = c.call(f'count "{letter}" in the word', "Letting the calculator count so nothing is missed:", expr)
    c.final = f'There {"is" if out == "1" else "are"} {out} "{letter}"{"" if out == "1" else "s"} in "{word}".'
    return c


def percent(rng, v) -> Chain:
    c = Chain()
    if rng.random() < 0.5:
        pct, x = rng.choice((3, 7, 12, 15, 17, 23, 35, 45, 62, 85)), rng.randint(40, 9000)
        c.question = rng.choice((f"What is {pct}% of {x}?", f"Calculate {pct} percent of {x}."))
        out = c.call(f"take {pct}% of {x}", "Percent means per hundred:", f"{x} * {pct} / 100")
        c.final = f"{pct}% of {x} is {out}."
    else:
        a, b = rng.randint(20, 900), rng.randint(20, 900)
        c.question = f"A price went from {a} to {b}. What's the percentage change?"
        out = c.call("divide the change by the old value", "Change ÷ old value × 100:", f"({b} - {a}) / {a} * 100")
        c.final = f"That's a change of {rounded(out, 2, '%')}{' (an increase)' if b > a else ' (a decrease)' if b < a else ''}."
    return c


def arithmetic(rng, v) -> Chain:
    c = Chain()
    a, b = rng.randint(120, 99999), rng.randint(12, 9999)
    op = rng.choice(("*", "/", "+", "-", "%"))
    c.question = rng.choice((f"What's {a} {op} {b}?", f"Compute {a} {op} {b}.", f"Can you work out {a} {op} {b}?"))
    out = c.call("compute it", rng.choice(("The calculator handles this exactly:", "Computing it exactly:",
                                           "Running the numbers:")), f"{a} {op} {b}")
    c.final = f"{a} {op} {b} = {rounded(out, 4)}."
    return c


def pay(rng, v) -> Chain:
    c, h, rate = Chain(), rng.choice((12, 16, 20, 24.5, 32, 37.5, 40, 45)), price(rng, 11, 85)
    c.question = rng.choice((f"I worked {h} hours at ${rate} an hour. What did I earn?",
                             f"How much is {h} hours of work at ${rate}/hour?"))
    out = c.call("multiply hours by the rate", "Pay = hours × hourly rate:", f"{h} * {rate}")
    c.final = f"You earned {money(out)}."
    weeks = rng.randint(2, 12)
    c.follow = follow_up(f"And if I do that every week for {weeks} weeks?", f"{out} a week × {weeks} weeks:",
                         f"{out} * {weeks}", f"Over {weeks} weeks that's {{money}}.")
    return c


SINGLE = {  # generator: topics it suits
    split_bill: ("food", "money"), tip: ("food", "money"), discount: ("money", "home", "art", "crafts"),
    convert: ("travel", "science", "food", "sports", "health"), simple_interest: ("money", "news"),
    compound: ("money", "news"), area: ("home", "garden", "farm", "school"), speed: ("travel", "sports", "cars"),
    letters: ("school", "language", "books", "games", "animals"), percent: ("money", "work", "school"),
    arithmetic: ("tech", "science", "work"), pay: ("work", "money"),
}
