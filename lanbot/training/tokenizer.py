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

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from lanbot.core.conversation import merge_system, role_problem
from lanbot.core.files import atomic_path
from lanbot.core.layout import CHAT_FORMAT_FILE, TOKENIZER_FILE
from lanbot.training.chat_format import NANOCHAT, ChatFormat, chat_format, marker_pattern

if TYPE_CHECKING:
    import torch

SPECIALS = list(NANOCHAT.specials)  # the nine special tokens of lanbot's own (nanochat-format) tokenizers
MAX_CHAT_FORMAT_BYTES = 1 << 20  # chat_format.json: a name, a system prompt and a Jinja template (Qwen2.5's 2 KB)

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
    """A byte-level BPE tokenizer whose special tokens are never produced from plain text, and the chat format
    its model speaks (nanochat's for lanbot's own models, the model's own for a pretrained one)."""

    SPECIALS = SPECIALS

    def __init__(self, hf: HFTokenizer, chat: ChatFormat = NANOCHAT, template: str | None = None,
                 default_system: str | None = None):
        self._hf = hf
        # Added tokens would otherwise be matched inside text: a user's "<|bos|>" must stay text.
        self._hf.encode_special_tokens = True
        missing = [s for s in chat.specials if hf.token_to_id(s) is None]
        if missing:
            fix = ("train it with Tokenizer.train" if chat is NANOCHAT
                   else "add them with lanbot.training.pretrained_start.add_chat_tokens")
            raise ValueError(f"tokenizer lacks the special tokens {missing} of the {chat.name} format; {fix}")
        self.chat, self.template, self.default_system = chat, template, default_system
        known = [*chat.specials, *(s for s in (*chat.stops_also, chat.document_start) if hf.token_to_id(s) is not None)]
        self._special_ids = {s: hf.token_to_id(s) for s in known}
        self._markers = marker_pattern(chat)
        self._marker_ids: dict[str, list[int]] = {}

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
        """Write `<directory>/tokenizer.json` atomically (and chat_format.json for a format other than
        nanochat's); returns the tokenizer's path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / TOKENIZER_FILE
        with atomic_path(path) as tmp:
            self._hf.save(str(tmp))
        if self.chat is not NANOCHAT:
            info = {"format": self.chat.name, "default_system": self.default_system, "template": self.template}
            with atomic_path(directory / CHAT_FORMAT_FILE) as tmp:
                tmp.write_text(json.dumps(info, ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Tokenizer:
        """Load `<directory>/tokenizer.json` (or the file itself if given), in the chat format its
        chat_format.json names (nanochat's where there is none)."""
        path = Path(directory)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer at {path}: a checkpoint folder holds one (Tokenizer.save)")
        info_file = path.parent / CHAT_FORMAT_FILE
        info: dict[str, Any] = {}
        if info_file.is_file():
            if info_file.stat().st_size > MAX_CHAT_FORMAT_BYTES:
                raise ValueError(f"{info_file}: more than {MAX_CHAT_FORMAT_BYTES:,} bytes; restore the checkpoint's own")
            info = json.loads(info_file.read_text(encoding="utf-8"))
        return cls(HFTokenizer.from_file(str(path)), chat_format(str(info.get("format", NANOCHAT.name))),
                   info.get("template"), info.get("default_system"))

    @property
    def vocab_size(self) -> int:
        """Number of token ids (specials included)."""
        return self._hf.get_vocab_size(with_added_tokens=True)

    def special_id(self, name: str) -> int:
        """Id of a special token by its spelling, e.g. `special_id("<|bos|>")`."""
        try:
            return self._special_ids[name]
        except KeyError:
            raise KeyError(f"unknown special token {name!r}; known: {tuple(self._special_ids)}") from None

    @property
    def special_ids(self) -> set[int]:
        """Every special token's id (what bits per byte counts as zero bytes)."""
        return set(self._special_ids.values())

    @property
    def bos_id(self) -> int:
        """The token that opens each document in packed corpus rows: nanochat's <|bos|>, SmolLM2's and Qwen's
        <|endoftext|>, Llama 3's <|begin_of_text|>."""
        return self._special_ids[self.chat.document_start]

    @property
    def stop_ids(self) -> set[int]:
        """Tokens that end a reply: the format's stop, and the openings of a turn a model writes by mistake."""
        return {self._special_ids[self.chat.stop], *(self._special_ids[s] for s in self.chat.stops_also
                                                   if s in self._special_ids)}

    def encode(self, text: str) -> list[int]:
        """Ids of `text` as ordinary text (no special token is ever matched)."""
        return self._hf.encode(text, add_special_tokens=False).ids

    def encode_marker(self, text: str) -> list[int]:
        """Ids of a chat-format marker: its special tokens by spelling, the rest as text (cached)."""
        if text not in self._marker_ids:
            ids: list[int] = []
            for piece in self._markers.split(text):
                if piece:
                    ids += [self._special_ids[piece]] if piece in self._special_ids else self.encode(piece)
            self._marker_ids[text] = ids
        return self._marker_ids[text]

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
    specials = tok.special_ids
    for i in range(tok.vocab_size):
        if i not in specials:
            out[i] = len(tok.decode([i]).encode("utf-8"))
    return out


def render_conversation(
    tok: Tokenizer, conversation: Sequence[dict[str, Any]], max_tokens: int | None = None
) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and its loss mask (1 = the model is trained to produce it), in the
    tokenizer's chat format (chat_format.py).

    nanochat's layout: `<|bos|>` then `<|user_start|>text<|user_end|>` and `<|assistant_start|>...<|assistant_end|>`
    per message, a system message folded into the first user turn. Trained on: assistant text, calculator calls
    with their markers, the stop token. Not trained on: bos, system and user turns, the assistant's opening,
    calculator outputs with their markers, what follows the stop (ChatML's newline). `max_tokens` truncates both.
    """
    fmt, marker = tok.chat, tok.encode_marker
    ids: list[int] = []
    mask: list[int] = []

    def add(tokens: list[int], m: int) -> None:
        ids.extend(tokens)
        mask.extend([m] * len(tokens))

    messages = list(conversation)
    if fmt.system is None:
        messages = merge_system(messages)
    add(marker(fmt.bos) if fmt.bos else [], 0)
    if messages and messages[0].get("role") == "system":
        system = messages.pop(0).get("content")
        if not isinstance(system, str):
            raise ValueError("message 0: system content must be a string")
        if not messages or messages[0].get("role") != "user":
            raise ValueError("a system message must be followed by a user message")
        add([*marker(fmt.system[0]), *tok.encode(system), *marker(fmt.system[1])], 0)
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        wrong = role_problem(i, role)
        if wrong:
            raise ValueError(wrong)
        if role == "user":
            if not isinstance(content, str):
                raise ValueError(f"message {i}: user content must be a string")
            add([*marker(fmt.user[0]), *tok.encode(content), *marker(fmt.user[1])], 0)
            continue
        add(marker(fmt.assistant[0]), 0)
        if isinstance(content, str):
            add(tok.encode(content), 1)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                kind, text = part.get("type"), part.get("text", "")
                if kind == "text":
                    add(tok.encode(text), 1)
                elif kind == "python":
                    add([*marker(fmt.call[0]), *tok.encode(fmt.call_text(text)), *marker(fmt.call[1])], 1)
                elif kind == "python_output":
                    add([*marker(fmt.output[0]), *tok.encode(text), *marker(fmt.output[1])], 0)
                else:
                    raise ValueError(
                        f"message {i} part {j}: unknown type {kind!r} (text, python, python_output)"
                    )
        else:
            raise ValueError(f"message {i}: assistant content must be a string or a list of parts")
        add(marker(fmt.stop), 1)
        add(marker(fmt.after_turn) if fmt.after_turn else [], 0)
    if max_tokens is not None:
        ids, mask = ids[:max_tokens], mask[:max_tokens]
    return ids, mask


def render_for_completion(tok: Tokenizer, conversation: Sequence[dict[str, Any]]) -> list[int]:
    """The history for the model to answer: the final assistant message (if any) is dropped and the
    ids end with the format's assistant opening (`<|assistant_start|>`)."""
    messages = list(conversation)
    if messages and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    if not messages or messages[-1].get("role") != "user":
        raise ValueError("render_for_completion needs a conversation ending with a user message")
    ids, _ = render_conversation(tok, messages)
    return [*ids, *tok.encode_marker(tok.chat.assistant[0])]
