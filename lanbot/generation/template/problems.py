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
    """A calculator output as people write money: to the cent, comma thousands: '$1,234.50', '$27.55'.

    The exact output stays in the python_output part; the text rounds half up to the cent (a till does).
    """
    d = Decimal(out).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return f"-${-d:,.2f}" if d < 0 else f"${d:,.2f}"


def usd(amount: str) -> str:
    """An amount the user states: '$1,250' (whole) or '$24.50' (cents), with comma thousands."""
    d = Decimal(amount)
    return f"${d:,.2f}" if "." in amount else f"${d:,}"


def article(word: str) -> str:
    """'a' or 'an' for how `word` is said: 'an office chair', 'an 18% tip', 'a 15% tip', 'a unicorn'."""
    w = word.strip().lower()
    if w[:1].isdigit():
        lead = w.split("%")[0].split()[0].replace(",", "")
        return "an" if lead.startswith("8") or lead in ("11", "18") or (len(lead) in (5, 6) and lead[:2] in ("11", "18")) else "a"
    if w.startswith(("uni", "use", "usu", "eu", "one")):
        return "a"
    return "an" if w[:1] in "aeiou" or w.startswith(("hour", "honest")) else "a"


def with_article(word: str) -> str:
    """`word` with its article: with_article('office chair') -> 'an office chair'."""
    return f"{article(word)} {word}"


def count_of(n: object, plural: str) -> str:
    """'1 year', '3 years', '0.75 cans': the singular only for exactly one."""
    return f"{n} {plural[:-1] if str(n) in ('1', '1.0') else plural}"


def rounded(out: str, places: int = 2, unit: str = "") -> str:
    """'3.10686' -> 'about 3.11'; short outputs as they are ('4.5'). `unit` follows the number ('°C', '%').

    No floating-point noise reaches the text: the calculator's exact output is in its python_output part.
    """
    d = Decimal(out)
    if -d.as_tuple().exponent > places:
        q = d.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP).normalize()
        return f"about {format(q, ',f')}{unit}"
    return f"{format(d, ',f') if abs(d) >= 10000 else out}{unit}"


def num(out: str, places: int = 2) -> str:
    """A calculator output as a plain number in text, rounded to `places` without 'about': '3.11'."""
    d = Decimal(out)
    if -d.as_tuple().exponent > places:
        d = d.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP).normalize()
    return format(d, ",f") if abs(d) >= 10000 else format(d, "f")


def price(rng: random.Random, lo: float, hi: float) -> str:
    """A price in [lo, hi] as people see them on a tag: mostly ending in .99, .49, .95 or .00, always cents."""
    base = rng.uniform(lo, hi)
    ending = rng.choice((".99", ".49", ".95", ".00", ".50", ".25", f".{rng.randint(0, 99):02d}"))
    whole = max(int(base), 0) if lo >= 1 else 0
    return f"{whole}{ending}" if lo >= 1 else f"{base:.2f}"


def duration(hours: str) -> str:
    """A calculator output in hours as people say it: '2 h 15 min', '45 min', '11 h'."""
    total = int((Decimal(hours) * 60).quantize(Decimal(1), ROUND_HALF_UP))
    h, m = divmod(total, 60)
    return f"{h} h {m} min" if h and m else f"{h} h" if h else f"{m} min"


# ---- one call ---------------------------------------------------------------------------------------

def split_bill(rng, v) -> Chain:
    c, total, n = Chain(), price(rng, 24, 380), rng.randint(2, 9)
    meal = rng.choice(v["meals"])
    c.question = rng.choice((
        f"Our {meal} came to {usd(total)} and there are {n} of us. How much does each person pay if we split it evenly?",
        f"Split a {usd(total)} bill evenly between {n} people: how much each?",
        f"{n} friends share a {usd(total)} {meal} bill equally. What's each share?",
    ))
    out = c.call("divide the total by the number of people", "Dividing the bill evenly:", f"{total} / {n}")
    c.final = rng.choice((f"Each of the {n} people pays {money(out)}.", f"That's {money(out)} each.",
                          f"{money(out)} per person."))
    more = rng.randint(n + 1, n + 4)
    c.follow = follow_up(f"What if {more - n} more {'person joins' if more - n == 1 else 'people join'} and we split the same bill?",
                         f"Same {usd(total)}, now {more} ways:", f"{total} / {more}", f"Then each of the {more} pays {{money}}.")
    return c


def tip(rng, v) -> Chain:
    c, bill, pct = Chain(), price(rng, 18, 260), rng.choice((10, 12, 15, 18, 20, 22, 25))
    c.question = rng.choice((
        f"What's the tip at {pct}% on a {usd(bill)} bill?", f"How much should I tip at {pct}% if the check is {usd(bill)}?",
        f"The bill is {usd(bill)}. I want to leave {pct}%. How much is the tip?",
    ))
    out = c.call(f"take {pct}% of the bill", f"The tip is {pct}% of {usd(bill)}:", f"{bill} * {pct} / 100")
    c.final = f"{with_article(f'{pct}%').capitalize()} tip on {usd(bill)} is {money(out)}."
    c.follow = follow_up(rng.choice(("So what's the total with the tip?", "And the whole thing including tip?")),
                         f"Bill plus the {money(out)} tip:", f"{bill} + {out}", "The total comes to {money}.")
    return c


def discount(rng, v) -> Chain:
    c, p, pct = Chain(), price(rng, 15, 900), rng.choice((10, 15, 20, 25, 30, 35, 40, 50, 60, 70))
    item = rng.choice(v["shop_items"])
    c.question = rng.choice((
        f"{with_article(item).capitalize()} costs {usd(p)} and is {pct}% off. What's the sale price?",
        f"How much is a {usd(p)} {item} after a {pct}% discount?",
        f"There's {pct}% off {with_article(item)} listed at {usd(p)}. What will I pay?",
    ))
    out = c.call(f"multiply the price by {100 - pct}%", f"After {pct}% off, you pay {100 - pct}% of the price:",
                 f"{p} * (1 - {pct} / 100)")
    c.final = f"The {item} costs {money(out)} after the {pct}% discount."
    tax = rng.choice((5, 6, 7, 8, 10, 20))
    c.follow = follow_up(f"And with {tax}% sales tax on the sale price?", f"Adding {tax}% to {money(out)}:",
                         f"{out} * (1 + {tax} / 100)", "With tax it's {money}.")
    return c


CONVERSIONS = (  # (from, to, factor expression, how, realistic range of the amount)
    ("kilometers", "miles", "* 0.621371", "1 km is about 0.621371 miles", (1, 500)),
    ("miles", "kilometers", "* 1.609344", "1 mile is 1.609344 km", (1, 400)),
    ("pounds", "kilograms", "* 0.45359237", "1 lb is 0.45359237 kg", (1, 250)),
    ("kilograms", "pounds", "/ 0.45359237", "1 lb is 0.45359237 kg", (1, 120)),
    ("inches", "centimeters", "* 2.54", "1 inch is 2.54 cm", (1, 80)),
    ("feet", "meters", "* 0.3048", "1 foot is 0.3048 m", (2, 1000)),
    ("US gallons", "liters", "* 3.785411784", "1 US gallon is 3.785411784 liters", (1, 30)),
    ("cups", "milliliters", "* 236.588", "1 US cup is about 236.588 ml", (0.5, 8)),
    ("ounces", "grams", "* 28.349523125", "1 ounce is 28.349523125 g", (1, 40)),
)


def convert(rng, v) -> Chain:
    c = Chain()
    if rng.random() < 0.25:
        t = rng.choice([x for x in range(-20, 111) if abs(x) != 1])
        if rng.random() < 0.5:
            c.question = f"Convert {t}°F to Celsius."
            out = c.call("apply C = (F - 32) * 5 / 9", "Using C = (F - 32) × 5/9:", f"({t} - 32) * 5 / 9")
            c.final = f"{t}°F is {rounded(out, 1, '°C')}."
        else:
            t = rng.choice([x for x in range(-25, 46) if abs(x) != 1])  # "-1 degrees" reads as a typo
            c.question = rng.choice((f"What is {t}°C in Fahrenheit?", f"Convert {t} degrees Celsius to Fahrenheit."))
            out = c.call("apply F = C * 9 / 5 + 32", "Using F = C × 9/5 + 32:", f"{t} * 9 / 5 + 32")
            c.final = f"{t}°C is {rounded(out, 1, '°F')}."
        return c
    src, dst, factor, how, (lo, hi) = rng.choice(CONVERSIONS)
    x = rng.choice((str(rng.randint(max(2, int(lo)), int(hi))), f"{rng.uniform(max(lo, 1.1), hi):.1f}"))
    c.question = rng.choice((f"How many {dst} is {x} {src}?", f"Convert {x} {src} to {dst}.",
                             f"What's {x} {src} in {dst}?"))
    out = c.call(f"convert {src} to {dst}", f"{how[0].upper()}{how[1:]}, so:", f"{x} {factor}")
    c.final = f"{x} {src} is {rounded(out)} {dst}."
    return c


def simple_interest(rng, v) -> Chain:
    c, p, r, t = Chain(), str(rng.choice(range(500, 20001, 250))), rng.choice((2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7)), rng.randint(1, 12)
    c.question = f"What's the simple interest on {usd(p)} at {r}% a year for {count_of(t, 'years')}?"
    out = c.call("multiply principal, rate and time", "Simple interest = principal × rate × years:", f"{p} * {r} / 100 * {t}")
    c.final = f"The simple interest is {money(out)}."
    return c


def compound(rng, v) -> Chain:
    c, p, r, t = Chain(), str(rng.choice(range(1000, 50001, 500))), rng.choice((2, 3, 3.5, 4, 4.5, 5, 6, 7, 8)), rng.randint(2, 25)
    c.question = rng.choice((
        f"If I invest {usd(p)} at {r}% compounded yearly, how much will I have after {t} years?",
        f"{usd(p)} grows at {r}% per year, compounded annually. What's it worth in {t} years?",
    ))
    out = c.call("compound the principal yearly", f"Compounding yearly: {usd(p)} × (1 + {r}/100)^{t}:",
                 f"{p} * (1 + {r} / 100) ** {t}")
    c.final = f"After {t} years you'd have {money(out)}."
    c.follow = follow_up("How much of that is interest?", "Interest = final balance − what you put in:",
                         f"{out} - {p}", "The interest earned is {money}.")
    return c


ROOM_SIZES = {"bedroom": (2.5, 5.5), "kitchen": (2.2, 6), "living room": (3.5, 8), "garden bed": (0.8, 4),
              "patio": (2, 7), "office": (2.2, 5), "hallway": (0.9, 2), "garage floor": (2.8, 7),
              "classroom": (6, 10), "studio": (3, 7)}


def area(rng, v) -> Chain:
    c = Chain()
    kind = rng.randrange(3)
    if kind == 0:
        room = rng.choice(v["rooms"])
        lo, hi = ROOM_SIZES.get(room, (2, 8))
        x, y = f"{rng.uniform(lo, hi):.1f}", f"{rng.uniform(max(lo, 1.5), hi):.1f}"
        c.question = f"My {room} is {x} m by {y} m. What's the floor area?"
        out = c.call("multiply length by width", "Area of a rectangle = length × width:", f"{x} * {y}")
        c.final = f"The {room} is {rounded(out)} square meters."
    elif kind == 1:
        r = rng.choice((str(rng.randint(2, 80)), f"{rng.uniform(2, 60):.1f}"))
        c.question = rng.choice((f"What's the area of a circle with radius {r} cm?",
                                 f"A round table has a radius of {r} cm. How big is its surface?"))
        out = c.call("apply pi * r^2", "Area = π × r², with π ≈ 3.14159:", f"3.14159 * {r} ** 2")
        c.final = f"The area is {rounded(out)} square centimeters."
    else:
        b, h = rng.randint(3, 60), rng.randint(3, 60)
        c.question = f"Find the area of a triangle with base {b} and height {h}."
        out = c.call("halve base times height", "Area of a triangle = ½ × base × height:", f"0.5 * {b} * {h}")
        c.final = f"The triangle's area is {num(out)} square units."
    return c


SPEEDS = {  # trip: (km/h range, km range) that such a trip really has
    "drive to the coast": ((55, 100), (60, 400)), "road trip": ((65, 105), (200, 900)),
    "bike ride": ((12, 28), (8, 90)), "train journey": ((70, 220), (40, 700)),
    "drive to grandma's": ((45, 95), (15, 300)), "commute": ((18, 55), (4, 40)),
    "run": ((8, 14), (3, 42)), "hike": ((3, 5.5), (5, 25)),
}


def speed(rng, v) -> Chain:
    c, kind = Chain(), rng.randrange(3)
    trip = rng.choice(v["trips"])
    (slo, shi), (dlo, dhi) = SPEEDS.get(trip, ((20, 90), (10, 400)))
    if kind == 0:
        t = rng.choice((0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5.5, 6))
        d = max(1, round(rng.uniform(slo, shi) * t))
        c.question = f"My {trip} was {d} km and took {count_of(t, 'hours')}. What was my average speed?"
        out = c.call("divide distance by time", "Average speed = distance ÷ time:", f"{d} / {t}")
        c.final = f"Your average speed was {rounded(out, 1)} km/h."
    elif kind == 1:
        d, s = rng.randint(int(dlo), int(dhi)), rng.randint(int(slo), int(shi))
        c.question = f"How long does {with_article(f'{d} km')} {trip} take at {s} km/h?"
        out = c.call("divide distance by speed", "Time = distance ÷ speed:", f"{d} / {s}")
        c.final = f"It takes {duration(out)} ({rounded(out)} hours)." if "." in out else f"It takes {count_of(out, 'hours')}."
    else:
        s, t = rng.randint(int(slo), int(shi)), rng.choice((0.25, 0.5, 0.75, 1.5, 2, 3, 4))
        c.question = f"If I keep up {s} km/h on my {trip} for {count_of(t, 'hours')}, how far do I get?"
        out = c.call("multiply speed by time", "Distance = speed × time:", f"{s} * {t}")
        c.final = f"You'd cover {num(out)} km."
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
        c.question = rng.choice((f"What is {pct}% of {x:,}?", f"Calculate {pct} percent of {x:,}."))
        out = c.call(f"take {pct}% of {x}", "Percent means per hundred:", f"{x} * {pct} / 100")
        c.final = f"{pct}% of {x:,} is {num(out)}."
    else:
        old, new = rng.randint(20, 900), rng.randint(20, 900)
        c.question = f"A price went from ${old} to ${new}. What's the percentage change?"
        out = c.call("divide the change by the old value", "Change ÷ old value × 100:", f"({new} - {old}) / {old} * 100")
        change = ' (an increase)' if new > old else ' (a decrease)' if new < old else ''
        c.final = f"That's a change of {rounded(out, 1, '%')}{change}."
    return c


def arithmetic(rng, v) -> Chain:
    c = Chain()
    x, y = rng.randint(120, 99999), rng.randint(12, 9999)
    op = rng.choice(("*", "/", "+", "-", "%"))
    c.question = rng.choice((f"What's {x} {op} {y}?", f"Compute {x} {op} {y}.", f"Can you work out {x} {op} {y}?"))
    out = c.call("compute it", rng.choice(("The calculator handles this exactly:", "Computing it exactly:",
                                           "Running the numbers:")), f"{x} {op} {y}")
    c.final = f"{x} {op} {y} = {num(out, 4)}." if op != "/" or "." not in out else f"{x} / {y} ≈ {num(out, 4)}."
    return c


def pay(rng, v) -> Chain:
    c, h, rate = Chain(), rng.choice((12, 16, 20, 24.5, 32, 37.5, 40, 45)), price(rng, 11, 85)
    c.question = rng.choice((f"I worked {h} hours at {usd(rate)} an hour. What did I earn?",
                             f"How much is {h} hours of work at {usd(rate)}/hour?"))
    out = c.call("multiply hours by the rate", "Pay = hours × hourly rate:", f"{h} * {rate}")
    c.final = f"You earned {money(out)}."
    weeks = rng.randint(2, 12)
    c.follow = follow_up(f"And if I do that every week for {weeks} weeks?", f"{money(out)} a week × {weeks} weeks:",
                         f"{out} * {weeks}", f"Over {weeks} weeks that's {{money}}.")
    return c


SINGLE = {  # generator: topics it suits
    split_bill: ("food", "money"), tip: ("food", "money"), discount: ("money", "home", "art", "crafts"),
    convert: ("travel", "science", "food", "sports", "health"), simple_interest: ("money", "news"),
    compound: ("money", "news"), area: ("home", "garden", "farm", "school"), speed: ("travel", "sports", "cars"),
    letters: ("school", "language", "books", "games", "animals"), percent: ("money", "work", "school"),
    arithmetic: ("tech", "science", "work"), pay: ("work", "money"),
}
