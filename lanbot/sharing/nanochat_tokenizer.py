"""nanochat's tokenizer to lanbot's and back: `tokenizer/tokenizer.pkl` + `token_bytes.pt` <-> tokenizer.json.

nanochat keeps its tokenizer as a pickled tiktoken `Encoding`, whose pickled state is four plain values:
its name, the split regex (`pat_str`), `mergeable_ranks` (token bytes -> id) and `special_tokens`
(spelling -> id; nanochat's nine, the same spellings as lanbot's, after the ranks). tiktoken encodes a
piece of text by merging, again and again, the adjacent pair whose concatenation has the lowest rank
(a piece that is itself a token is that token at once). `token_bytes.pt` is an int32 tensor: the byte
length of each token, 0 for the specials.

Reading never runs pickled code and needs no tiktoken: a restricted unpickler admits the one class
`tiktoken.core.Encoding`, and builds a plain record of its state instead of tiktoken's object; any
other global in the file is refused. Writing emits the same pickle (the class by name, then its state),
which nanochat's `pickle.load` turns back into a real tiktoken Encoding.

The conversion is exact: a Hugging Face byte-level BPE with the ranks as ids, every split of a token
into two tokens as a merge ordered by the rank of the whole (tiktoken's rule), `ignore_merges` (a
piece in the vocabulary is one token, as tiktoken does), the same split regex, and the specials at
their ids.

    state = read_encoding(Path("~/.cache/nanochat/tokenizer/tokenizer.pkl"))
    tok = to_lanbot(state)                       # lanbot's Tokenizer, identical ids
    write_tokenizer(tok, Path("out/tokenizer"))  # tokenizer.pkl + token_bytes.pt for nanochat
"""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from lanbot.core.errors import LanbotError
from lanbot.core.files import atomic_path
from lanbot.training.tokenizer import SPECIALS, Tokenizer

PICKLE_FILE = "tokenizer.pkl"
TOKEN_BYTES_FILE = "token_bytes.pt"
ENCODING_CLASS = ("tiktoken.core", "Encoding")


class NanochatTokenizerError(LanbotError, ValueError):
    """A nanochat tokenizer that cannot be read or converted; the message names the file."""


@dataclass
class EncodingState:
    """What a pickled tiktoken Encoding holds."""

    name: str
    pat_str: str
    mergeable_ranks: dict[bytes, int]
    special_tokens: dict[str, int]

    @property
    def n_vocab(self) -> int:
        return 1 + max([*self.mergeable_ranks.values(), *self.special_tokens.values()])

    def token_bytes(self, decoded: bool = False) -> list[int]:
        """Byte length of each id, 0 for the specials (nanochat's token_bytes.pt). nanochat of 2025 counted
        the UTF-8 of each token decoded on its own (`decoded`: a partial character became U+FFFD, 3 bytes)."""
        out = [0] * self.n_vocab
        for token, rank in self.mergeable_ranks.items():
            out[rank] = len(token.decode("utf-8", errors="replace").encode()) if decoded else len(token)
        return out


class _EncodingRecord:
    """Stands in for tiktoken's Encoding while unpickling: keeps the state it is given."""

    def __setstate__(self, state: object) -> None:
        self.state = state


class _EncodingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        if (module, name) == ENCODING_CLASS:
            return _EncodingRecord
        raise pickle.UnpicklingError(f"refusing {module}.{name}: a nanochat tokenizer.pkl holds only a tiktoken Encoding")


def read_encoding(path: Path) -> EncodingState:
    """The tiktoken Encoding pickled at `path`, as a plain record (no pickled code runs)."""
    try:
        record = _EncodingUnpickler(io.BytesIO(path.read_bytes())).load()
    except OSError as exc:
        raise NanochatTokenizerError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise NanochatTokenizerError(f"{path}: not a nanochat tokenizer ({exc}); point at nanochat's "
                                     "tokenizer/ folder (train.nanochat_tokenizer=...)") from None
    state = getattr(record, "state", None)
    if isinstance(state, str):
        raise NanochatTokenizerError(f"{path} names tiktoken's built-in encoding {state!r} (nanochat's "
                                     "from_pretrained) rather than holding one: lanbot needs a trained tokenizer.pkl")
    fields = ("name", "pat_str", "mergeable_ranks", "special_tokens")
    if not isinstance(record, _EncodingRecord) or not isinstance(state, dict) or set(fields) - set(state):
        raise NanochatTokenizerError(f"{path}: not a pickled tiktoken Encoding (expected its {', '.join(fields)})")
    ranks, specials = state["mergeable_ranks"], state["special_tokens"]
    if not (isinstance(ranks, dict) and all(isinstance(k, bytes) and isinstance(v, int) for k, v in ranks.items())
            and isinstance(specials, dict) and all(isinstance(k, str) and isinstance(v, int)
                                                   for k, v in specials.items())):
        raise NanochatTokenizerError(f"{path}: mergeable_ranks must map bytes to ids and special_tokens names to ids")
    return EncodingState(str(state["name"]), str(state["pat_str"]), dict(ranks), dict(specials))


def encoding_pickle(state: EncodingState) -> bytes:
    """The bytes `pickle.dump(tiktoken.Encoding(...))` writes, up to memo numbering: the class by name
    (GLOBAL), a new object of it (NEWOBJ) and its state dict (BUILD), which tiktoken's __setstate__ takes."""
    body = pickle.dumps({"name": state.name, "pat_str": state.pat_str, "mergeable_ranks": state.mergeable_ranks,
                         "special_tokens": state.special_tokens}, protocol=3)  # protocol 3: no frames to strip
    module, name = ENCODING_CLASS
    return b"\x80\x03" + f"c{module}\n{name}\n".encode() + b")\x81" + body[2:-1] + b"b."


def byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character map, which Hugging Face's ByteLevel pre-tokenizer applies."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def to_lanbot(state: EncodingState, source: str = "tokenizer.pkl") -> Tokenizer:
    """lanbot's Tokenizer with the same ids as the tiktoken Encoding for every text (see the module doc)."""
    missing = [s for s in SPECIALS if s not in state.special_tokens]
    if missing:
        raise NanochatTokenizerError(f"{source} lacks the special tokens {missing} (it has "
                                     f"{sorted(state.special_tokens)}): lanbot renders chats with nanochat's nine")
    alphabet = byte_alphabet()
    absent = [b for b in range(256) if bytes([b]) not in state.mergeable_ranks]
    if absent:
        raise NanochatTokenizerError(f"{source}: {len(absent)} single bytes are not tokens: not a byte-level BPE")

    def spell(token: bytes) -> str:
        return "".join(alphabet[b] for b in token)

    ranks = state.mergeable_ranks
    vocab = {spell(token): rank for token, rank in ranks.items()}
    merges = sorted(((rank, k, token) for token, rank in ranks.items() for k in range(1, len(token))
                     if token[:k] in ranks and token[k:] in ranks))
    bpe = models.BPE(vocab=vocab, merges=[(spell(t[:k]), spell(t[k:])) for _, k, t in merges], ignore_merges=True)
    hf = HFTokenizer(bpe)
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(state.pat_str), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    hf.decoder = decoders.ByteLevel()
    by_id = sorted(state.special_tokens.items(), key=lambda item: item[1])
    hf.add_special_tokens([AddedToken(name, special=True, normalized=False) for name, _ in by_id])
    moved = [f"{name} {i} -> {hf.token_to_id(name)}" for name, i in by_id if hf.token_to_id(name) != i]
    if moved:
        raise NanochatTokenizerError(f"{source}: special tokens must follow the ranks in id order; {', '.join(moved)}")
    return Tokenizer(hf)


def from_lanbot(tok: Tokenizer) -> EncodingState:
    """The tiktoken Encoding state of a lanbot Tokenizer: ids as ranks, the split regex of its tokenizer.json.

    Exact for tokenizers converted from nanochat. For one that lanbot trained, tiktoken merges any pair
    whose concatenation is a token while Hugging Face follows its merge list, so a rare word may split
    differently (tests/test_nanochat_interop.py measures how often)."""
    spec = json.loads(tok._hf.to_str())
    splits = [p for p in (spec.get("pre_tokenizer") or {}).get("pretokenizers", []) if p.get("type") == "Split"]
    if len(splits) != 1 or "Regex" not in splits[0].get("pattern", {}):
        raise NanochatTokenizerError("the tokenizer has no single Split regex: it was not made by lanbot")
    decode = {c: b for b, c in byte_alphabet().items()}
    specials = {name: tok._hf.token_to_id(name) for name in (t.content for t in tok._hf.get_added_tokens_decoder().values())}
    ranks = {bytes(decode[c] for c in token): i for token, i in tok._hf.get_vocab(with_added_tokens=False).items()
             if token not in specials}
    return EncodingState("lanbot", splits[0]["pattern"]["Regex"], ranks, specials)


def read_tokenizer(directory: Path) -> Tokenizer:
    """lanbot's Tokenizer from a nanochat tokenizer folder; token_bytes.pt, where present, must agree."""
    state = read_encoding(directory / PICKLE_FILE)
    tok = to_lanbot(state, str(directory / PICKLE_FILE))
    counts = directory / TOKEN_BYTES_FILE
    if counts.is_file():
        import torch

        try:
            saved = torch.load(counts, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 (torch raises many kinds for a bad file)
            raise NanochatTokenizerError(f"{counts}: unreadable ({exc.__class__.__name__}); delete it or restore it") from None
        if not isinstance(saved, torch.Tensor) or saved.tolist() not in (state.token_bytes(), state.token_bytes(True)):
            raise NanochatTokenizerError(f"{counts} does not match {directory / PICKLE_FILE}: it belongs to "
                                         "another tokenizer; restore the pair nanochat's tok_train wrote")
    return tok


def write_tokenizer(tok: Tokenizer, directory: Path) -> EncodingState:
    """tokenizer.pkl and token_bytes.pt of `tok` in `directory`, each written atomically."""
    import torch

    state = from_lanbot(tok)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / PICKLE_FILE) as tmp:
        tmp.write_bytes(encoding_pickle(state))
    with atomic_path(directory / TOKEN_BYTES_FILE) as tmp:
        torch.save(torch.tensor(state.token_bytes(), dtype=torch.int32), tmp)
    return state
