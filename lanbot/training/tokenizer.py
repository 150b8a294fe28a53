"""lanbot's tokenizer: byte-level BPE with nanochat's special tokens, and the chat renderer.

The BPE is trained locally with Hugging Face `tokenizers` (a GPT-4-like split regex, then bytes mapped
to printable characters as GPT-2 does), so any text round-trips. The nine special tokens are added as
special tokens; text that merely *spells* one (a user typing "<|bos|>") is encoded as ordinary text.

    tok = Tokenizer.train(texts, vocab_size=4096)      # seconds for a few thousand conversations
    tok.save("some/dir"); tok = Tokenizer.load("some/dir")
    ids, mask = render_conversation(tok, conversation)   # mask 1 = trained on
    prompt = render_for_completion(tok, conversation)    # ends with <|assistant_start|>
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from lanbot.core.conversation import merge_system, role_problem
from lanbot.core.files import atomic_path
from lanbot.core.layout import TOKENIZER_FILE

if TYPE_CHECKING:
    import torch

SPECIALS = [
    "<|bos|>",
    "<|user_start|>",
    "<|user_end|>",
    "<|assistant_start|>",
    "<|assistant_end|>",
    "<|python_start|>",
    "<|python_end|>",
    "<|output_start|>",
    "<|output_end|>",
]

# GPT-4's split pattern, with numbers split in runs of at most 2 digits (as nanochat does for small vocabs).
# Runs of non-space (or of space) characters are cut to pieces of at most MAX_PIECE characters for BPE training
# only: real words, numbers, URLs and indentation are shorter, and BPE training is quadratic in a piece's length
# (200,000 characters without a space took 11.9 s, a 20 MB reply did not end; 50,000 spaces 4.5 s); cut, it is
# linear. Encoding is unchanged.
MAX_PIECE = 128
LONG_RUN = re.compile(rf"\S{{{MAX_PIECE + 1},}}|\s{{{MAX_PIECE + 1},}}")
SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""


def bounded_pieces(texts: Iterable[str]) -> Iterator[str]:
    """`texts` as BPE trains on them: a run of more than MAX_PIECE non-space characters cut by spaces, a longer
    blank cut short."""

    def cut(match: re.Match) -> str:
        run = match.group(0)
        if run[0].isspace():  # a long blank: its first MAX_PIECE characters carry every merge it has
            return run[:MAX_PIECE]
        return " ".join(run[i:i + MAX_PIECE] for i in range(0, len(run), MAX_PIECE))

    for text in texts:
        yield LONG_RUN.sub(cut, text) if len(text) > MAX_PIECE else text


class Tokenizer:
    """A byte-level BPE tokenizer whose special tokens are never produced from plain text."""

    SPECIALS = SPECIALS

    def __init__(self, hf: HFTokenizer):
        self._hf = hf
        # Added tokens would otherwise be matched inside text: a user's "<|bos|>" must stay text.
        self._hf.encode_special_tokens = True
        missing = [s for s in SPECIALS if hf.token_to_id(s) is None]
        if missing:
            raise ValueError(f"tokenizer lacks the special tokens {missing}; train it with Tokenizer.train")
        self._special_ids = {s: hf.token_to_id(s) for s in SPECIALS}

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> Tokenizer:
        """Train a BPE of at most `vocab_size` tokens (specials included) on `texts`.

        A small corpus may end with fewer tokens than asked for; `vocab_size` tells what it got.
        """
        if vocab_size < 256 + len(SPECIALS):
            raise ValueError(
                f"vocab_size={vocab_size} is too small: it needs 256 bytes + {len(SPECIALS)} specials"
            )
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            min_frequency=2,
            show_progress=False,
        )
        hf.train_from_iterator(bounded_pieces(texts), trainer=trainer)
        return cls(hf)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write `<directory>/tokenizer.json` atomically; returns its path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / TOKENIZER_FILE
        with atomic_path(path) as tmp:
            self._hf.save(str(tmp))
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Tokenizer:
        """Load `<directory>/tokenizer.json` (or the file itself if given)."""
        path = Path(directory)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer at {path}: a checkpoint folder holds one (Tokenizer.save)")
        return cls(HFTokenizer.from_file(str(path)))

    @property
    def vocab_size(self) -> int:
        """Number of token ids (specials included)."""
        return self._hf.get_vocab_size(with_added_tokens=True)

    def special_id(self, name: str) -> int:
        """Id of a special token by its spelling, e.g. `special_id("<|bos|>")`."""
        try:
            return self._special_ids[name]
        except KeyError:
            raise KeyError(f"unknown special token {name!r}; known: {SPECIALS}") from None

    @property
    def bos_id(self) -> int:
        return self._special_ids["<|bos|>"]

    def encode(self, text: str) -> list[int]:
        """Ids of `text` as ordinary text (no special token is ever matched)."""
        return self._hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode` over many texts at once (parallel in Rust)."""
        return [e.ids for e in self._hf.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; special tokens are written out by their spelling."""
        return self._hf.decode(list(ids), skip_special_tokens=False)


def token_bytes(tok: Tokenizer) -> torch.Tensor:
    """Bytes of each token's text (specials 0): what bits per byte divides by, in training and evaluation."""
    import torch

    out = torch.zeros(tok.vocab_size, dtype=torch.float64)
    specials = {tok.special_id(n) for n in Tokenizer.SPECIALS}
    for i in range(tok.vocab_size):
        if i not in specials:
            out[i] = len(tok.decode([i]).encode("utf-8"))
    return out


def render_conversation(
    tok: Tokenizer, conversation: Sequence[dict[str, Any]], max_tokens: int | None = None
) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and its loss mask (1 = the model is trained to produce it).

    Layout: `<|bos|>` then `<|user_start|>text<|user_end|>` and `<|assistant_start|>...<|assistant_end|>`
    per message. Trained on: assistant text, python calls with their markers, `<|assistant_end|>`.
    Not trained on: bos, user turns, `<|assistant_start|>`, python outputs with their markers.
    `max_tokens` truncates both lists.
    """
    sid = tok.special_id
    ids: list[int] = []
    mask: list[int] = []

    def add(tokens: list[int], m: int) -> None:
        ids.extend(tokens)
        mask.extend([m] * len(tokens))

    add([sid("<|bos|>")], 0)
    for i, message in enumerate(merge_system(conversation)):
        role, content = message.get("role"), message.get("content")
        wrong = role_problem(i, role)
        if wrong:
            raise ValueError(wrong)
        if role == "user":
            if not isinstance(content, str):
                raise ValueError(f"message {i}: user content must be a string")
            add([sid("<|user_start|>"), *tok.encode(content), sid("<|user_end|>")], 0)
            continue
        add([sid("<|assistant_start|>")], 0)
        if isinstance(content, str):
            add(tok.encode(content), 1)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                kind, text = part.get("type"), part.get("text", "")
                if kind == "text":
                    add(tok.encode(text), 1)
                elif kind == "python":
                    add([sid("<|python_start|>"), *tok.encode(text), sid("<|python_end|>")], 1)
                elif kind == "python_output":
                    add([sid("<|output_start|>"), *tok.encode(text), sid("<|output_end|>")], 0)
                else:
                    raise ValueError(
                        f"message {i} part {j}: unknown type {kind!r} (text, python, python_output)"
                    )
        else:
            raise ValueError(f"message {i}: assistant content must be a string or a list of parts")
        add([sid("<|assistant_end|>")], 1)
    if max_tokens is not None:
        ids, mask = ids[:max_tokens], mask[:max_tokens]
    return ids, mask


def render_for_completion(tok: Tokenizer, conversation: Sequence[dict[str, Any]]) -> list[int]:
    """The history for the model to answer: the final assistant message (if any) is dropped and the
    ids end with `<|assistant_start|>`."""
    messages = merge_system(conversation)
    if messages and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    if not messages or messages[-1].get("role") != "user":
        raise ValueError("render_for_completion needs a conversation ending with a user message")
    ids, _ = render_conversation(tok, messages)
    return [*ids, tok.special_id("<|assistant_start|>")]
