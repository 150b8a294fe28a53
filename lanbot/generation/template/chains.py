"""Multi-step word problems: two to four calculator calls, each later call reusing an earlier output.

Every generator puts the earlier output text itself into the next expression (`f"{subtotal} * 0.18"`),
so the chain in the data is exactly what a model must learn to do: read a tool result, then use it.
"""

from __future__ import annotations

import math
import random

from lanbot.generation.template.problems import (
    CONVERSIONS,
    ROOM_SIZES,
    SPEEDS,
    Chain,
    count_of,
    duration,
    money,
    price,
    rounded,
    usd,
    with_article,
)


def dinner_tip_split(rng: random.Random, v: dict) -> Chain:
    c, n, pct = Chain(), rng.randint(2, 8), rng.choice((15, 18, 20, 22))
    k = rng.randint(2, 4)
    items = [price(rng, 6, 48) for _ in range(k)]
    meal = rng.choice(v["meals"])
    listed = ", ".join(usd(x) for x in items)
    c.question = (f"For our {meal} we ordered dishes costing {listed}. We want to add {with_article(f'{pct}%')} tip and split "
                  f"everything between {n} people. How much does each person pay?")
    sub = c.call("add up the dishes", "First the subtotal of the dishes:", " + ".join(items))
    t = c.call(f"take {pct}% of the subtotal for the tip", f"Now the {pct}% tip on {money(sub)}:", f"{sub} * {pct} / 100")
    total = c.call("add the tip to the subtotal", "Subtotal plus tip:", f"{sub} + {t}")
    each = c.call(f"divide the total by {n}", f"Split between {n} people:", f"{total} / {n}")
    c.final = (f"The dishes come to {money(sub)}, the tip is {money(t)}, the total is {money(total)}, "
               f"so each person pays {money(each)}.")
    return c


def discount_then_tax(rng: random.Random, v: dict) -> Chain:
    c, p, pct, tax = Chain(), price(rng, 20, 700), rng.choice((10, 15, 20, 25, 30, 40)), rng.choice((5, 6, 7, 8, 8.25, 9.5, 10, 20))
    item, qty = rng.choice(v["shop_items"]), rng.randint(1, 4)
    c.question = (f"{with_article(item).capitalize()} is {usd(p)}, with {pct}% off, and then {tax}% sales tax applies. "
                  + (f"I'm buying {qty}. What's my total?" if qty > 1 else "What do I pay?"))
    sale = c.call(f"apply the {pct}% discount", f"Price after {pct}% off:", f"{p} * (1 - {pct} / 100)")
    taxed = c.call(f"add {tax}% tax to the sale price", f"Adding {tax}% tax to {money(sale)}:", f"{sale} * (1 + {tax} / 100)")
    if qty > 1:
        total = c.call(f"multiply by {qty}", f"Times {qty} items:", f"{taxed} * {qty}")
        c.final = f"Each {item} costs {money(taxed)} with tax, so {qty} of them cost {money(total)}."
    else:
        c.final = f"The {item} is {money(sale)} after the discount and {money(taxed)} with tax."
    return c


def investment_gain(rng: random.Random, v: dict) -> Chain:
    c, p, r, t = Chain(), str(rng.choice(range(1000, 40001, 500))), rng.choice((3, 4, 4.5, 5, 6, 7)), rng.randint(3, 20)
    c.question = f"I put {usd(p)} in an account paying {r}% a year, compounded annually. After {t} years, how much interest have I earned, and how does that compare with simple interest?"
    amount = c.call("compound the balance", "Balance after compounding:", f"{p} * (1 + {r} / 100) ** {t}")
    gain = c.call("subtract the principal", "Interest earned = balance − principal:", f"{amount} - {p}")
    simple = c.call("work out simple interest for comparison", "Simple interest for comparison:", f"{p} * {r} / 100 * {t}")
    extra = c.call("take the difference", "How much more compounding earns:", f"{gain} - {simple}")
    c.final = (f"The balance grows to {money(amount)}, so you earn {money(gain)} in interest. Simple interest "
               f"would give {money(simple)}, so compounding earns {money(extra)} more.")
    return c


def road_trip(rng: random.Random, v: dict) -> Chain:
    c, d, mpg, gas, n = Chain(), rng.randint(80, 1400), rng.randint(18, 48), price(rng, 2.8, 5.9), rng.randint(1, 5)
    c.question = (f"We're driving {d} miles. The car does {mpg} miles per gallon and gas costs {usd(gas)} a gallon. "
                  + (f"There are {n} of us splitting fuel. What does each pay?" if n > 1 else "What will fuel cost?"))
    gal = c.call("work out the gallons needed", "Gallons needed = miles ÷ mpg:", f"{d} / {mpg}")
    cost = c.call("multiply gallons by the price", "Fuel cost = gallons × price:", f"{gal} * {gas}")
    if n > 1:
        each = c.call(f"split the cost {n} ways", f"Split {n} ways:", f"{cost} / {n}")
        c.final = f"You need {rounded(gal)} gallons costing {money(cost)}, so each person pays {money(each)}."
    else:
        c.final = f"You need {rounded(gal)} gallons, so the fuel costs {money(cost)}."
    return c


def paint_room(rng: random.Random, v: dict) -> Chain:
    room = rng.choice([r for r in v["rooms"] if r not in ("garden bed", "patio", "garage floor")])
    lo, hi = ROOM_SIZES.get(room, (2, 8))  # whole metres a room of that kind has: no 13 m by 9 m bedroom
    a, b = rng.randint(math.ceil(lo), max(math.ceil(lo), int(hi))), rng.randint(math.ceil(lo), max(math.ceil(lo), int(hi)))
    c, cover, can = Chain(), rng.choice((8, 10, 12)), price(rng, 14, 60)
    c.question = (f"I'm painting the floor of my {room}: {a} m by {b} m. One can covers {cover} square meters "
                  f"and costs {usd(can)}. How many cans is that, and what will it cost?")
    ar = c.call("find the area", "Area = length × width:", f"{a} * {b}")
    cans = c.call("divide the area by the coverage of one can", f"Cans = area ÷ {cover}:", f"{ar} / {cover}")
    whole = c.call("round the cans up to whole cans", "You can only buy whole cans, so round up:", f"-(-{ar} // {cover})")
    cost = c.call("multiply whole cans by the price", "Cost = cans × price:", f"{whole} * {can}")
    c.final = (f"The floor is {ar} m², which needs {count_of(rounded(cans), 'cans')}, so buy {count_of(whole, 'cans')} "
               f"for {money(cost)}.")
    return c


def weekly_to_yearly(rng: random.Random, v: dict) -> Chain:
    c, rate, h, tax = Chain(), price(rng, 12, 70), rng.choice((20, 25, 30, 35, 37.5, 40)), rng.choice((12, 15, 18, 20, 22, 25, 30))
    c.question = f"I earn {usd(rate)} an hour for {h} hours a week. What's that per year, and after {tax}% tax?"
    week = c.call("find the weekly pay", "Weekly pay = rate × hours:", f"{rate} * {h}")
    year = c.call("multiply by 52 weeks", "Yearly = weekly × 52:", f"{week} * 52")
    net = c.call(f"take off {tax}% tax", f"After {tax}% tax:", f"{year} * (1 - {tax} / 100)")
    c.final = f"That's {money(week)} a week, {money(year)} a year before tax and {money(net)} after {tax}% tax."
    return c


def convert_then_price(rng: random.Random, v: dict) -> Chain:
    c = Chain()
    src, dst, factor, how, _ = rng.choice([x for x in CONVERSIONS if x[0] in ("pounds", "kilograms")])
    food = rng.choice(list(PER_KG))
    lo, hi = PER_KG[food]  # US dollars per kilogram, as a market stall asks
    if dst == "pounds":
        lo, hi = lo * 0.4536, hi * 0.4536
    x, unit_price = rng.randint(2, 40), f"{rng.uniform(max(lo, 0.3), hi):.2f}"
    per = {"kilograms": "kilogram", "pounds": "pound"}[dst]
    c.question = f"I have {x} {src} of {food} to sell, priced at {usd(unit_price)} per {per}. What's it worth?"
    amount = c.call(f"convert {src} to {dst}", f"{how[0].upper()}{how[1:]}:", f"{x} {factor}")
    worth = c.call(f"multiply by the price per {per}", f"Value = {dst} × price:", f"{amount} * {unit_price}")
    c.final = f"{x} {src} is {rounded(amount)} {dst}, worth {money(worth)}."
    return c


PER_KG = {  # what a kilogram sells for at a market, in US dollars: no bread at $26 a pound
    "apples": (2.5, 6), "bananas": (1.2, 3), "coffee beans": (14, 40), "cheese": (9, 30), "rice": (1.5, 5),
    "flour": (1, 3), "tomatoes": (2.5, 8), "chicken": (5, 14), "oranges": (2, 5), "pasta": (2, 6),
    "carrots": (1.2, 3.5), "grapes": (3.5, 9), "salmon": (18, 40), "honey": (10, 28), "lentils": (2.5, 6),
    "potatoes": (1, 3), "strawberries": (6, 14), "walnuts": (12, 26),
}


def letters_total(rng: random.Random, v: dict) -> Chain:
    c = Chain()
    k = rng.randint(2, 3)
    words = rng.sample([w.lower() for w in v["letter_words"]], k)
    letter = rng.choice(sorted(set(words[0])))
    listed = ", ".join(f'"{w}"' for w in words[:-1]) + f' and "{words[-1]}"'
    c.question = f'How many times does the letter "{letter}" appear in total in the words {listed}?'
    counts = [c.call(f'count "{letter}" in "{w}"', f'"{letter}" in "{w}":', f'"{w}".count("{letter}")') for w in words]
    total = c.call("add the counts", "Adding the counts:", " + ".join(counts))
    each = ", ".join(f'{n} in "{w}"' for n, w in zip(counts, words, strict=True))
    c.final = f'The letter "{letter}" appears {total} {"time" if total == "1" else "times"} in total ({each}).'
    return c


def speed_then_distance(rng: random.Random, v: dict) -> Chain:
    trip = rng.choice(v["trips"])
    (slo, shi), _ = SPEEDS.get(trip, ((20, 90), (10, 400)))
    c, t, t2 = Chain(), rng.choice((0.5, 1.25, 2, 2.5, 3, 4)), rng.choice((1, 1.5, 3, 5, 6))
    d = max(2, round(rng.uniform(slo, shi) * t))
    far_km = rng.choice((50, 100, 200, 500, 1000)) if shi > 60 else rng.choice((10, 20, 42, 50))
    later = count_of(t2, "hours")
    c.question = (f"My {trip} covered {d} km in {count_of(t, 'hours')}. At the same speed, how far would I get in "
                  f"{later}, and how long would {far_km} km take?")
    s = c.call("find the speed", "Speed = distance ÷ time:", f"{d} / {t}")
    far = c.call(f"multiply the speed by {later}", f"Distance in {later}:", f"{s} * {t2}")
    long = c.call(f"divide {far_km} km by the speed", f"Time for {far_km} km:", f"{far_km} / {s}")
    c.final = (f"Your speed is {rounded(s, 1)} km/h, so in {later} you'd cover {rounded(far, 1)} km, and {far_km} km "
               f"takes {duration(long)}.")
    return c


def average_then_needed(rng: random.Random, v: dict) -> Chain:
    # Scores people meet, and a target the next test can reach: the target sits between the current average
    # and what a 100 would bring (before, 72% of these asked for a score over 100).
    scores = [rng.randint(55, 98) for _ in range(rng.randint(3, 5))]
    n = len(scores)
    best = (sum(scores) + 100) / (n + 1)  # the highest average one more test can give
    mean = sum(scores) / n
    reachable = [t for t in range(60, 100) if mean < t <= best]  # a raise the next score can bring
    round_ones = [t for t in reachable if t % 5 == 0]  # people aim for 80, 85, 90
    target = rng.choice(round_ones or reachable or [math.floor(best)])
    c, scores = Chain(), [str(x) for x in scores]
    name = rng.choice(v["names"])
    c.question = (f"{name} scored {', '.join(scores)} on {n} tests. What's the average, and what score on one more "
                  f"test would bring the average to {target}?")
    total = c.call("add the scores", "Sum of the scores:", " + ".join(scores))
    avg = c.call(f"divide by {n}", f"Average = sum ÷ {n}:", f"{total} / {n}")
    need = c.call(f"find the score that makes the average of {n + 1} tests {target}",
                  f"Needed = {target} × {n + 1} − current sum:", f"{target} * {n + 1} - {total}")
    c.final = (f"{name}'s average is {rounded(avg)}. To reach {target} over {n + 1} tests, the next score must be "
               f"{need}{' (more than 100, so it is out of reach)' if float(need) > 100 else ''}.")
    return c


CHAINS = {
    dinner_tip_split: ("food", "money"), discount_then_tax: ("money", "home", "art"),
    investment_gain: ("money", "news"), road_trip: ("travel", "cars"), paint_room: ("home", "garden"),
    weekly_to_yearly: ("work", "money"), convert_then_price: ("food", "farm"),
    letters_total: ("school", "language", "books", "games"), speed_then_distance: ("travel", "sports"),
    average_then_needed: ("school", "sports"),
}
