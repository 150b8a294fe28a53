"""How the user writes: a persona's voice and an opening style applied to a plain request.

The template writer words every request plainly; `user_message` turns it into what this user would
type: a greeting or "yo" or "Excuse me, could you..." in front (the opening style), then the voice
(lower case, typos, emoji, a kid's "pls", a retiree's "Thank you kindly", an engineer's "Sanity check:").
Quoted text, numbers and amounts are never altered, so a word problem still means the same thing.
"""

from __future__ import annotations

import random
import re

OPENINGS = ("direct", "greeting", "casual", "polite", "typos", "task")
OPENING_WEIGHTS = (30, 20, 14, 14, 8, 14)

GREETINGS = ("Hi!", "Hello!", "Hi there.", "Hey there!", "Good morning!", "Good evening.", "Hello,", "Hi,")
CASUAL = ("yo", "yo!", "hey", "sup,", "heyy", "ok so", "hey hey,", "hiya")
POLITE = ("Excuse me,", "Sorry to bother you, but", "Pardon me,", "If you don't mind,", "Hello, I hope you're well.")
POLITE_ASK = ("could you tell me", "would you mind telling me", "may I ask", "can you tell me")
POLITE_HELP = (
    "could you help me with this?", "would you mind helping me with something?",
    "could you give me a hand?", "I'd be grateful for some help.",
)
TASK = (
    "Quick task:", "Need help with this one:", "Task for you:", "Can you handle this?", "Here's one for you:",
    "Working on something:", "Help me out:",
)

EMOJI = ("🙂", "😊", "🙏", "✨", "🤔", "😅", "👍", "💡", "😄", "🤓")
_PROTECTED = re.compile(r"(\"[^\"]*\"|\S*\d\S*|R?\$\S*)")  # quoted text, numbers, amounts (R$ too)
_CONTRACTIONS = {
    "what's": "what is", "don't": "do not", "I'm": "I am", "can't": "cannot", "it's": "it is",
    "you're": "you are", "isn't": "is not", "How's": "How is", "What's": "What is", "I'd": "I would",
    "doesn't": "does not", "I've": "I have", "let's": "let us", "Let's": "Let us",
}


def user_message(rng: random.Random, body: str, opening: str, voice: str | None,
                 indirect: str | None = None, persona: str | None = None) -> str:
    """The first user turn: `body` (a plain request) under an opening style, then in the persona's voice.

    `indirect` is the request as an embedded clause ("what your name is"), used by polite openings.
    """
    text = open_with(rng, opening, body, indirect)
    prefix = opening in ("direct", "typos")  # a voice's own opener only where the opening has none
    if persona and voice not in ("terse", "kid") and rng.random() < 0.12 and persona[:2] in ("a ", "an"):
        text = f"{text.rstrip()} (I'm {persona}, in case that matters.)"
    return apply_voice(rng, voice or "plain", text, prefix)


def open_with(rng: random.Random, opening: str, body: str, indirect: str | None = None) -> str:
    """`body` under one opening style (see OPENINGS)."""
    if opening == "greeting":
        greeting = rng.choice(GREETINGS)
        return f"{greeting} {_lower_first(body) if greeting.endswith(',') else body}"
    if opening == "casual":
        return f"{rng.choice(CASUAL)} {_lower_first(body)}"
    if opening == "polite":
        pre = rng.choice(POLITE)
        ask = f"{rng.choice(POLITE_ASK)} {indirect}?" if indirect else f"{rng.choice(POLITE_HELP)} {body}"
        return f"{pre} {ask[0].upper() + ask[1:] if pre.endswith('.') else ask}"
    if opening == "typos":
        return typos(rng, body, rng.randint(1, 3))
    if opening == "task":
        return f"{rng.choice(TASK)} {body}"
    return body


def apply_voice(rng: random.Random, voice: str, text: str, prefix: bool = True, sign_off: bool = True) -> str:
    """`text` as a user with this voice would type it.

    A later turn passes prefix=False and, mostly, sign_off=False: people greet and sign off once, not every turn.
    """
    return _voice(rng, voice, text, prefix, sign_off)


def _voice(rng: random.Random, voice: str, text: str, prefix: bool, sign_off: bool) -> str:
    if voice == "terse":
        text = re.sub(r"\b(please|just|actually|really|maybe)\b,? ?", "", text, flags=re.I)
        text = re.sub(r"^[\s,]+", "", text)  # "Actually, what are you?" -> "what are you?", not ", what are you?"
        text = re.sub(r"\s*,\s*([?!.]|$)", r"\1", text)  # "help, really?" -> "help?"
        return text.rstrip("?!. ") if rng.random() < 0.5 else text
    if voice == "formal":
        for short, long in _CONTRACTIONS.items():
            text = text.replace(short, long)
        return _wrap(rng, text, prefix, sign_off, ("Good day.", "Dear assistant,", "Good afternoon.", ""),
                     ("Thank you in advance.", "Many thanks.", "I would appreciate a precise answer.", ""))
    if voice == "typos":
        return typos(rng, text, rng.randint(1, 2))
    if voice == "lowercase":
        text = _protected_sub(text, str.lower)
        text = re.sub(r"\byou\b", "u", text) if rng.random() < 0.4 else text
        return text.rstrip("?.") if rng.random() < 0.5 else text
    if voice == "emoji":
        return f"{text} {''.join(rng.sample(EMOJI, rng.randint(1, 2)))}"
    if voice == "non_native":
        if rng.random() < 0.6:
            text = re.sub(r"\b(the|a) (?=[a-z])", "", text, count=2)
        return _wrap(rng, text, prefix, sign_off, ("Hello,", "Please,", "Good day, I have question.", ""),
                     ("Sorry for my English.", "Thank you very much.", "Thanks for help.", ""))
    if voice == "kid":
        text = _protected_sub(text, str.lower).replace("?", "??")
        return _wrap(rng, text, prefix, sign_off, ("hi!!", "hiii", "um", ""), ("pls", "my teacher said i could ask", "thank u!!", ""))
    if voice == "retiree":
        return _wrap(rng, text, prefix, sign_off, ("Hello there.", "Good morning, dear.", "My grandson set this up for me.", ""),
                     ("Thank you kindly.", "Much obliged.", "Thanks ever so much.", ""))
    if voice == "engineer":
        return _wrap(rng, text, prefix, sign_off, ("Quick question:", "Sanity check:", "Q:", ""),
                     ("Precise answer, please.", "Short answer is fine.", "Thanks.", ""))
    if voice == "casual":
        return _wrap(rng, text, prefix, sign_off, ("ok so", "so", "hey,", ""), ("thx", "cheers", "lol", ""))
    if voice == "enthusiastic":
        text = text.replace("?", "?!") if rng.random() < 0.5 else text
        return _wrap(rng, text, prefix, sign_off, ("Hi!!", "Ooh, question:", ""), ("Thanks so much!!", "You're the best!", ""))
    if voice == "anxious":
        return _wrap(rng, text, prefix, sign_off, ("Sorry if this is a silly question,", "I hope this isn't a dumb question, but", ""),
                     ("I really need to get this right.", "Thanks, I'm a bit stressed.", ""))
    if voice == "verbose":
        return _wrap(rng, text, prefix, sign_off, ("I've been meaning to ask something.", "So, here's the thing.", ""),
                     ("I'd love a clear explanation if you have a moment.", "Take your time.", ""))
    return text


def typos(rng: random.Random, text: str, n: int) -> str:
    """`text` with up to `n` typos (a swapped, dropped or doubled letter) in unprotected longer words."""
    parts = _PROTECTED.split(text)
    spots = [(i, m.start()) for i, part in enumerate(parts) if i % 2 == 0
             for m in re.finditer(r"\b[a-z]{5,}", part)]  # lower-case words only: names stay intact
    for i, start in sorted(rng.sample(spots, min(n, len(spots))), reverse=True):  # back to front: no shifts
        word_end = re.match(r"[A-Za-z]+", parts[i][start:]).end() + start
        pos = rng.randrange(start + 1, word_end - 1)
        s, kind = parts[i], rng.randrange(3)
        if kind == 0:
            s = s[:pos] + s[pos + 1] + s[pos] + s[pos + 2:]
        elif kind == 1:
            s = s[:pos] + s[pos + 1:]
        else:
            s = s[:pos] + s[pos] + s[pos:]
        parts[i] = s
    return "".join(parts)


def _protected_sub(text: str, fn) -> str:
    parts = _PROTECTED.split(text)
    return "".join(fn(p) if i % 2 == 0 else p for i, p in enumerate(parts))


def _wrap(rng: random.Random, text: str, prefix: bool, sign_off: bool, prefixes: tuple[str, ...],
          suffixes: tuple[str, ...]) -> str:
    pre, post = rng.choice(prefixes) if prefix else "", rng.choice(suffixes) if sign_off else ""
    if pre:
        text = f"{pre} {_lower_first(text) if pre[-1] in ',:' or pre[-1].islower() else text}"
    return f"{text} {post}" if post else text


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and not text[1].isupper() and not text.startswith("I "):
        return text[0].lower() + text[1:]
    return text
