"""nanochat interop: import its late-2025 and 2026 checkpoints and its tokenizer, train mid on top, export back.

The checkpoints are built here from nanochat's formats (random weights under its parameter names, padded
vocabulary rows, bf16 embeddings as a GPU run saves them; a tiny BPE pickled as tiktoken pickles its
Encoding). The logits are checked against a reference forward written below from the architectures'
facts, and the ids against tiktoken's merge rule written out here. With NANOCHAT_DIR set to a nanochat
checkout (and NANOCHAT_PYTHON to a Python with its dependencies), the last test runs nanochat itself:
its tokenizer and base training on CPU, import, logits against its own forward, export, its checkpoint
manager and chat CLI on the export.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import re
import subprocess
import sys
import types
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Regex, pre_tokenizers
from train_fixtures import make_data_folder

from lanbot.core import layout
from lanbot.core.config import compose_config
from lanbot.evaluation.engine import Engine
from lanbot.evaluation.evaluate_checkpoint import evaluate_run
from lanbot.sharing import nanochat_tokenizer as nt
from lanbot.sharing import nanochat_versions
from lanbot.sharing.nanochat_checkpoint import NanochatCheckpointError, export_checkpoint, import_checkpoint
from lanbot.sharing.nanochat_export import ExportError, export_app
from lanbot.training import checkpoint as ckpt
from lanbot.training.model import GPT, GPTConfig
from lanbot.training.run import TrainError, train
from lanbot.training.tokenizer import SPECIALS, render_for_completion

os.environ["WANDB_MODE"] = "offline"
# nanochat's split regex (GPT-4's, numbers in runs of at most 2)
PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
TEXTS = [
    "I am LanBot, made by Gene Kobilansky. Ask me anything, number 12.",
    "who are you? what is your name? who made you? tell me about yourself",
    "The number 41 comes right after 40, and 1234 + 5678 = 6912.",
    "Let me compute it. It is 83. Rotary embeddings rotate queries and keys.",
] * 5
CORPUS = ("Héllo wörld! I'm LanBot; you're 12345 times welcome.\n\n  Ünïcödé 😀 tabs\tand\r\nlines "
          "<|bos|> stays text. ") + " ".join(TEXTS[:4])


# -- a tiny tokenizer in nanochat's format -----------------------------------------------------------------

def train_ranks(texts: list[str], merges: int = 150) -> dict[bytes, int]:
    """A byte-level BPE trained the plain way: bytes are ids 0..255, each merge the next id."""
    pieces = Counter(p.encode() for t in texts for p in re.findall(r" ?[A-Za-z]+| ?\d{1,2}| ?[^\sA-Za-z\d]+|\s+", t))
    words = {p: [bytes([b]) for b in p] for p in pieces}
    ranks = {bytes([b]): b for b in range(256)}
    for _ in range(merges):
        pairs: Counter = Counter()
        for p, parts in words.items():
            for a, b in zip(parts, parts[1:], strict=False):
                pairs[a, b] += pieces[p]
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        ranks.setdefault(a + b, len(ranks))
        for p, parts in words.items():
            i, out = 0, []
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            words[p] = out
    return ranks


def fake_tiktoken() -> tuple[type, dict]:
    """A stand-in `tiktoken.core.Encoding` that pickles its state as tiktoken's does (__getstate__)."""
    package, core = types.ModuleType("tiktoken"), types.ModuleType("tiktoken.core")

    class Encoding:
        def __init__(self, **state):
            self.__dict__.update(state)

        def __getstate__(self):
            return {k: self.__dict__[k] for k in ("name", "pat_str", "mergeable_ranks", "special_tokens")}

    Encoding.__module__, Encoding.__qualname__ = "tiktoken.core", "Encoding"
    core.Encoding, package.core = Encoding, core
    return Encoding, {"tiktoken": package, "tiktoken.core": core}


def with_fake_tiktoken(fn):
    Encoding, modules = fake_tiktoken()
    saved = {k: sys.modules.get(k) for k in modules}
    sys.modules.update(modules)
    try:
        return fn(Encoding)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def write_nanochat_tokenizer(directory: Path) -> dict:
    ranks = train_ranks(TEXTS)
    state = {"name": "rustbpe", "pat_str": PATTERN, "mergeable_ranks": ranks,
             "special_tokens": {s: len(ranks) + i for i, s in enumerate(SPECIALS)}}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tokenizer.pkl").write_bytes(with_fake_tiktoken(lambda Encoding: pickle.dumps(Encoding(**state))))
    counts = [0] * (len(ranks) + len(SPECIALS))
    for token, i in ranks.items():
        counts[i] = len(token)
    torch.save(torch.tensor(counts, dtype=torch.int32), directory / "token_bytes.pt")
    return state


def tiktoken_encode(ranks: dict[bytes, int], pattern: str, text: str) -> list[int]:
    """tiktoken's rule: per regex piece, a token if it is one, else merge the lowest-ranked pair until none is left."""
    ids: list[int] = []
    for piece, _ in pre_tokenizers.Split(Regex(pattern), behavior="isolated").pre_tokenize_str(text):
        data = piece.encode()
        if data in ranks:
            ids.append(ranks[data])
            continue
        parts = [bytes([b]) for b in data]
        while len(parts) > 1:
            rank, i = min((ranks.get(parts[i] + parts[i + 1], math.inf), i) for i in range(len(parts) - 1))
            if rank == math.inf:
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        ids.extend(ranks[p] for p in parts)
    return ids


# -- checkpoints in nanochat's format, and a reference forward -------------------------------------------

def config_2026(vocab: int) -> dict:
    # sequence_len 512: the short window is 128 keys, so a 200-token input feels it
    return {"sequence_len": 512, "vocab_size": vocab, "n_layer": 3, "n_head": 4, "n_kv_head": 2, "n_embd": 48,
            "window_pattern": "SSSL"}


def config_2025(vocab: int) -> dict:
    return {"sequence_len": 256, "vocab_size": vocab, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "n_embd": 32}


def random_state(cfg: dict, modern: bool, seed: int, pad_to: int) -> dict[str, torch.Tensor]:
    """Random weights under nanochat's parameter names and shapes (vocabulary rows padded)."""
    g = torch.Generator().manual_seed(seed)
    rows = -(-cfg["vocab_size"] // pad_to) * pad_to
    C, L = cfg["n_embd"], cfg["n_layer"]
    D = C // cfg["n_head"]
    kv = cfg["n_kv_head"] * D

    def r(*shape, std=0.1):
        return torch.randn(*shape, generator=g) * std

    state = {"transformer.wte.weight": r(rows, C, std=1.0), "lm_head.weight": r(rows, C, std=0.3)}
    for i in range(L):
        p = f"transformer.h.{i}."
        state.update({p + "attn.c_q.weight": r(C, C, std=C ** -0.5), p + "attn.c_k.weight": r(kv, C, std=C ** -0.5),
                      p + "attn.c_v.weight": r(kv, C, std=C ** -0.5), p + "attn.c_proj.weight": r(C, C, std=0.1),
                      p + "mlp.c_fc.weight": r(4 * C, C, std=C ** -0.5), p + "mlp.c_proj.weight": r(C, 4 * C, std=0.05)})
        if modern and i % 2 == (L - 1) % 2:
            state[p + "attn.ve_gate.weight"] = r(cfg["n_kv_head"], 12, std=0.5)
            state[f"value_embeds.{i}.weight"] = r(rows, kv, std=0.5).bfloat16()  # nanochat keeps these in bf16
    if modern:
        state["transformer.wte.weight"] = state["transformer.wte.weight"].bfloat16()
        state.update({"resid_lambdas": 1 + r(L, std=0.1), "x0_lambdas": 0.2 + r(L, std=0.1),
                      "smear_gate.weight": r(1, 24, std=0.5), "smear_lambda": torch.tensor([0.4]),
                      "backout_lambda": torch.tensor([0.2])})
    return state


def save_nanochat_checkpoint(folder: Path, state: dict, cfg: dict, step: int, prefix: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({prefix + k: v for k, v in state.items()}, folder / f"model_{step:06d}.pt")
    (folder / f"meta_{step:06d}.json").write_text(json.dumps({"step": step, "val_bpb": 3.21, "model_config": cfg}))


def rms(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def reference_logits(state: dict, cfg: dict, idx: torch.Tensor, modern: bool) -> torch.Tensor:
    """nanochat's forward, written out from its facts (layout B, T, H, D; explicit attention scores)."""
    W = {k: v.float() for k, v in state.items()}
    B, T = idx.shape
    L, H, Hk, C = cfg["n_layer"], cfg["n_head"], cfg["n_kv_head"], cfg["n_embd"]
    D = C // H
    base = 100000 if modern else 10000
    inv = 1.0 / (base ** (torch.arange(0, D, 2).float() / D))
    angles = torch.outer(torch.arange(T).float(), inv)
    cos, sin = angles.cos()[None, :, None], angles.sin()[None, :, None]
    if not modern:  # the late-2025 GPT keeps cos/sin in bfloat16
        cos, sin = cos.bfloat16().float(), sin.bfloat16().float()

    def rope(x):
        x1, x2 = x[..., :D // 2], x[..., D // 2:]
        return torch.cat([x1 * cos + x2 * sin, -x1 * sin + x2 * cos], -1)

    x = rms(F.embedding(idx, W["transformer.wte.weight"]))
    if modern:
        gate = W["smear_lambda"] * torch.sigmoid(x[:, 1:, :24] @ W["smear_gate.weight"].T)
        x = torch.cat([x[:, :1], x[:, 1:] + gate * x[:, :-1]], 1)
    x0, middle = x, None
    seq, short = cfg["sequence_len"], -(-cfg["sequence_len"] // 4 // 128) * 128
    pattern = cfg.get("window_pattern", "L").upper()
    t = torch.arange(T)
    for i in range(L):
        p = f"transformer.h.{i}."
        if modern:
            x = W["resid_lambdas"][i] * x + W["x0_lambdas"][i] * x0
        h = rms(x)
        q = (h @ W[p + "attn.c_q.weight"].T).view(B, T, H, D)
        k = (h @ W[p + "attn.c_k.weight"].T).view(B, T, Hk, D)
        v = (h @ W[p + "attn.c_v.weight"].T).view(B, T, Hk, D)
        if modern and f"value_embeds.{i}.weight" in W:
            ve = F.embedding(idx, W[f"value_embeds.{i}.weight"]).view(B, T, Hk, D)
            v = v + 3 * torch.sigmoid(h[..., :12] @ W[p + "attn.ve_gate.weight"].T).unsqueeze(-1) * ve
        q, k = rms(rope(q)), rms(rope(k))
        if modern:
            q, k = q * 1.2, k * 1.2
        k, v = k.repeat_interleave(H // Hk, dim=2), v.repeat_interleave(H // Hk, dim=2)
        window = short if modern and i < L - 1 and pattern[i % len(pattern)] == "S" else seq
        allowed = (t[None] <= t[:, None]) & (t[:, None] - t[None] <= window)
        scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(D)
        y = torch.einsum("bhts,bshd->bthd", scores.masked_fill(~allowed, -math.inf).softmax(-1), v)
        x = x + y.reshape(B, T, C) @ W[p + "attn.c_proj.weight"].T
        x = x + F.relu(rms(x) @ W[p + "mlp.c_fc.weight"].T).square() @ W[p + "mlp.c_proj.weight"].T
        if i == L // 2:
            middle = x
    if modern:
        x = x - W["backout_lambda"] * middle
    logits = (rms(x) @ W["lm_head.weight"].T)[..., :cfg["vocab_size"]]
    return 15 * torch.tanh(logits / 15)


@pytest.fixture
def nanochat_base(tmp_path: Path) -> dict:
    """A nanochat base dir: tokenizer/, a 2026 base checkpoint (2 steps) and a late-2025 one."""
    base = tmp_path / "nanochat"
    tok = write_nanochat_tokenizer(base / "tokenizer")
    vocab = len(tok["mergeable_ranks"]) + len(SPECIALS)
    c26, c25 = config_2026(vocab), config_2025(vocab)
    s26 = random_state(c26, True, seed=1, pad_to=64)
    save_nanochat_checkpoint(base / "base_checkpoints" / "d3", random_state(c26, True, 9, 64), c26, 100)
    save_nanochat_checkpoint(base / "base_checkpoints" / "d3", s26, c26, 250)
    s25 = random_state(c25, False, seed=2, pad_to=1)
    save_nanochat_checkpoint(base / "mid_checkpoints" / "d2", s25, c25, 40, prefix="_orig_mod.")
    return {"base": base, "tokenizer": tok, "vocab": vocab, "2026": (s26, c26), "2025": (s25, c25)}


# -- the tests ----------------------------------------------------------------------------------------------

def test_tokenizer_converts_with_identical_ids(nanochat_base: dict) -> None:
    state = nanochat_base["tokenizer"]
    tok = nt.read_tokenizer(nanochat_base["base"] / "tokenizer")
    expected = tiktoken_encode(state["mergeable_ranks"], PATTERN, CORPUS)
    assert tok.encode(CORPUS) == expected and len(expected) > 100
    assert tok.decode(expected) == CORPUS
    assert {s: tok.special_id(s) for s in SPECIALS} == state["special_tokens"]
    assert tok.vocab_size == nanochat_base["vocab"]
    # the one written back is tiktoken's pickle of the same state
    again = with_fake_tiktoken(lambda _: pickle.loads(nt.encoding_pickle(nt.from_lanbot(tok))))
    assert (again.mergeable_ranks, again.special_tokens, again.pat_str) == (
        state["mergeable_ranks"], state["special_tokens"], PATTERN)


def test_tokenizer_pickle_runs_no_code(tmp_path: Path) -> None:
    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (tmp_path / "tokenizer.pkl").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(nt.NanochatTokenizerError, match=r"tokenizer.pkl: not a nanochat tokenizer \(refusing posix.system"):
        nt.read_tokenizer(tmp_path)
    assert not (tmp_path / "pwned").exists()
    torch.save(torch.zeros(3, dtype=torch.int32), tmp_path / "token_bytes.pt")
    write_nanochat_tokenizer(tmp_path / "tok")
    (tmp_path / "tok" / "token_bytes.pt").write_bytes((tmp_path / "token_bytes.pt").read_bytes())
    with pytest.raises(nt.NanochatTokenizerError, match="token_bytes.pt does not match"):
        nt.read_tokenizer(tmp_path / "tok")


@pytest.mark.parametrize("arch", ["2026", "2025"])
def test_import_logits_match_reference_forward(nanochat_base: dict, arch: str) -> None:
    state, cfg = nanochat_base[arch]
    folder = nanochat_base["base"] / ("base_checkpoints/d3" if arch == "2026" else "mid_checkpoints/d2")
    model, tok, meta = import_checkpoint(f"nanochat:{folder}")  # latest step (250 for 2026)
    assert model.config.architecture == f"nanochat-{arch}" and meta.step == (250 if arch == "2026" else 40)
    assert model.lm_head.weight.shape[0] == cfg["vocab_size"]  # padding rows dropped
    idx = torch.randint(0, cfg["vocab_size"], (2, 200), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, ref = model(idx), reference_logits(state, cfg, idx, modern=arch == "2026")
    assert (ours - ref).abs().max().item() < 1e-4 and ref.std().item() > 0.5
    if arch == "2026":  # the windows bite: without them the logits differ
        assert model.config.window_sizes() == [128, 128, 512]
        wide = reference_logits(state, {**cfg, "window_pattern": "L"}, idx, modern=True)
        assert (wide - ref).abs().max().item() > 1e-2
        older, _, _ = import_checkpoint(f"nanochat:{folder}@100")
        assert older.config == model.config and (older(idx) - ours).abs().max().item() > 1e-2


def test_import_2026_kv_cache_decoding_matches_the_full_forward(nanochat_base: dict) -> None:
    model, tok, _ = import_checkpoint(f"nanochat:{nanochat_base['base']}/base_checkpoints/d3")
    prompt = [tok.bos_id, *tok.encode(CORPUS)][:170]  # past the 128-key window while decoding
    engine = Engine(model, tok)
    cached = engine.generate(prompt, max_tokens=20, top_k=1, seed=0)[0]
    plain = engine.generate(prompt, max_tokens=20, top_k=1, seed=0, use_cache=False)[0]
    assert cached.tokens == plain.tokens and len(cached.tokens) >= 1


def test_import_refusals_name_the_fix(nanochat_base: dict, tmp_path: Path) -> None:
    base = nanochat_base["base"]
    with pytest.raises(NanochatCheckpointError, match="holds the model tags d3: add one"):
        import_checkpoint(f"nanochat:{base}/base_checkpoints")
    with pytest.raises(NanochatCheckpointError, match="no step 7: it has 100, 250"):
        import_checkpoint(f"nanochat:{base}/base_checkpoints/d3@7")
    lone = tmp_path / "lone" / "d3"
    lone.mkdir(parents=True)
    for f in (base / "base_checkpoints" / "d3").glob("*_000250.*"):
        (lone / f.name).write_bytes(f.read_bytes())
    with pytest.raises(NanochatCheckpointError, match="train.nanochat_tokenizer"):
        import_checkpoint(f"nanochat:{lone}")
    model, _, _ = import_checkpoint(f"nanochat:{lone}", tokenizer_dir=str(base / "tokenizer"))
    state, cfg = nanochat_base["2026"]
    state = {k: v for k, v in state.items() if k != "smear_gate.weight"}  # a Jan-Mar 2026 GPT
    save_nanochat_checkpoint(tmp_path / "mid2026" / "d3", state, cfg, 5)
    with pytest.raises(NanochatCheckpointError, match="between Jan and Mar 2026"):
        import_checkpoint(f"nanochat:{tmp_path / 'mid2026' / 'd3'}", str(base / "tokenizer"))


def train_overrides(root: Path, init: str, *extra: str) -> list[str]:
    return [f"paths.root={root}", f"train.init_from={init}", "train.sequence_len=128", "train.device_batch_size=4",
            "train.total_batch_tokens=512", "train.max_steps=2", "train.eval_every=2", "train.checkpoint_every=2",
            "train.eval_at_end=false", "mix.mid.chat.limit=10", "logger=none", *extra]


def test_mid_and_sft_from_an_import_then_chat_and_export_back(nanochat_base: dict, tmp_path: Path) -> None:
    base = nanochat_base["base"]
    make_data_folder(tmp_path / "data" / "sage", per_type=12, name="Sage")
    source = f"nanochat:{base}/base_checkpoints/d3@250"
    mid = train(compose_config(train_overrides(tmp_path, source, "identity=sage")), tmp_path / "run_mid")
    meta = layout.CheckpointMeta.read(mid["checkpoint"])
    assert meta.base["nanochat"]["architecture"] == "nanochat-2026" and meta.tokenizer_from == f"nanochat:{base}/base_checkpoints/d3@250"
    sft = train(compose_config(train_overrides(tmp_path, "mid", "identity=sage", "stage=sft")), tmp_path / "run_sft")
    model, tok, meta = ckpt.load_checkpoint(sft["checkpoint"])
    assert meta.stage == "sft" and model.config.architecture == "nanochat-2026" and meta.base["nanochat"]["step"] == 250
    imported, _, _ = import_checkpoint(source)
    idx = torch.tensor([tok.encode(CORPUS)[:100]])
    assert (model(idx) - imported(idx)).abs().max().item() > 1e-3  # training moved it
    prompt = render_for_completion(tok, [{"role": "user", "content": "who are you?"}])
    assert Engine(model, tok).generate(prompt, max_tokens=5, seed=0)[0].tokens
    scores = evaluate_run(compose_config(train_overrides(
        tmp_path, "mid", "identity=sage", "stage=sft", "eval.samples=1", "eval.max_tokens=4", "eval.families=[identity]",
        "eval.capability_tokens=1024", "eval.control=null")), Path(sft["checkpoint"]), tmp_path / "run_eval")
    assert "identity_rate" in scores and scores["capability/base_bpb"] > 0  # the base read again from nanochat

    out = tmp_path / "nanochat_out"
    files = export_checkpoint(Path(sft["checkpoint"]), out, tag="sage")
    assert files["model"] == out / "chatsft_checkpoints" / "sage" / f"model_{meta.step:06d}.pt"
    saved = torch.load(files["model"], weights_only=True)
    written = json.loads(files["meta"].read_text())
    assert written["model_config"] == {**config_2026(nanochat_base["vocab"])} and saved["lm_head.weight"].shape[0] % 64 == 0
    with torch.no_grad():
        assert (reference_logits(saved, written["model_config"], idx, True) - model(idx)).abs().max().item() < 1e-4
    back = with_fake_tiktoken(lambda _: pickle.loads(files["tokenizer"].read_bytes()))
    assert back.mergeable_ranks == nanochat_base["tokenizer"]["mergeable_ranks"]
    assert torch.load(files["token_bytes"], weights_only=True).tolist() == nt.read_encoding(files["tokenizer"]).token_bytes()
    again, tok2, _ = import_checkpoint(f"nanochat:{out}/chatsft_checkpoints/sage")
    assert (again(idx) - model(idx)).abs().max().item() < 1e-5 and tok2.encode(CORPUS) == tok.encode(CORPUS)
    with pytest.raises(NanochatCheckpointError, match="exists; add export.overwrite=true"):
        export_checkpoint(Path(sft["checkpoint"]), out, tag="sage")


def test_export_of_lanbot_own_model_and_a_foreign_tokenizer(nanochat_base: dict, tmp_path: Path, capsys) -> None:
    """lanbot's own (late-2025) model: unpadded rows, its tokenizer as tiktoken would encode it; a base dir
    that holds another tokenizer is not overwritten."""
    make_data_folder(tmp_path / "data" / "lanbot", per_type=12)
    tiny = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "model.n_kv_head=2", "model.sequence_len=128",
            "model.vocab_size=400"]
    mid = train(compose_config(train_overrides(tmp_path, "scratch", *tiny)), tmp_path / "run")
    model, tok, _ = ckpt.load_checkpoint(mid["checkpoint"])
    with pytest.raises(NanochatCheckpointError, match="another tokenizer"):
        export_checkpoint(Path(mid["checkpoint"]), nanochat_base["base"])
    # the app: export.checkpoint=mid finds this identity's mid checkpoint
    app = compose_config([f"paths.root={tmp_path}", *tiny, "export.checkpoint=mid", f"export.base_dir={tmp_path / 'fresh'}",
                          "export.stage_dir=mid_checkpoints"])
    written = export_app(app)
    printed = capsys.readouterr().out
    # the newest nanochat with the late-2025 GPT pads its 400 rows to 448; today's cannot hold this GPT
    assert "nanochat-2025\nnanochat from 2025-12-09 (f1bf69d) up to 2026-01-16 (before e3f58b8) loads it with: " \
           f"NANOCHAT_BASE_DIR={tmp_path / 'fresh'} python -m scripts.chat_cli -i mid -g d1\n" in printed
    assert "today's nanochat cannot: since 2026-01-16 (e3f58b8) its GPT needs value embeddings" in printed
    files = {"model": written, "meta": written.parent / "meta_000002.json",
             "tokenizer": tmp_path / "fresh" / "tokenizer" / "tokenizer.pkl"}
    assert files["model"] == tmp_path / "fresh" / "mid_checkpoints" / "d1" / "model_000002.pt"
    with pytest.raises(ExportError, match="export.checkpoint=mid: .* exists; add export.overwrite=true"):
        export_app(app)
    saved = torch.load(files["model"], weights_only=True)
    cfg = json.loads(files["meta"].read_text())["model_config"]
    assert saved["lm_head.weight"].shape[0] == 448 and cfg["vocab_size"] == model.config.vocab_size == 400
    assert not saved["lm_head.weight"][400:].any() and not saved["transformer.wte.weight"][400:].any()
    idx = torch.tensor([tok.encode(CORPUS)[:90]])
    with torch.no_grad():  # lanbot's own model keeps float32 rotary tables; nanochat-2025 rounds them to bf16
        assert (reference_logits(saved, cfg, idx, modern=False) - model(idx)).abs().max().item() < 0.05
    state = nt.read_encoding(files["tokenizer"])
    assert tiktoken_encode(state.mergeable_ranks, state.pat_str, CORPUS) == tok.encode(CORPUS)
    with pytest.raises(TrainError, match="no step 3"):
        train(compose_config(train_overrides(tmp_path, f"nanochat:{files['model'].parent}@3", "train.overwrite=true")),
              tmp_path / "r2")


def lanbot_checkpoint(folder: Path, model: GPT, tok, base: dict | None = None, step: int = 7) -> Path:
    """A lanbot sft checkpoint of `model` grown from `base` (no training: the export reads weights, tokenizer, meta)."""
    from omegaconf import OmegaConf

    return ckpt.save_checkpoint(folder, model, None, tok, OmegaConf.create({}),
                                layout.CheckpointMeta(stage="sft", step=step, finished=True, base=base))


def own_2025_model(vocab: int) -> GPT:
    """lanbot's own GPT (late-2025, float32 rotary tables) with random weights that move every part."""
    model = GPT(GPTConfig(**config_2025(vocab)))
    model.init_weights()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def test_export_says_which_nanochat_loads_it(nanochat_base: dict, tmp_path: Path, capsys) -> None:
    """Each GPT's export names the nanochat commits that load it; a stage or padding no nanochat has is refused."""
    base = nanochat_base["base"]
    m26, tok, meta26 = import_checkpoint(f"nanochat:{base}/base_checkpoints/d3")
    m25, _, meta25 = import_checkpoint(f"nanochat:{base}/mid_checkpoints/d2")  # unpadded, from nanochat before Dec 9
    c26 = lanbot_checkpoint(tmp_path / "c26", m26, tok, meta26.base)
    c25 = lanbot_checkpoint(tmp_path / "c25", m25, tok, meta25.base)
    out = tmp_path / "out"

    def run(folder: Path, *extra: str) -> str:
        export_app(compose_config([f"paths.root={tmp_path}", f"export.checkpoint={folder}", f"export.base_dir={out}",
                                   *extra]))
        return capsys.readouterr().out

    printed = run(c26)
    assert ("nanochat-2026\nnanochat from 2026-03-14 (a825e63) to today (checked at 92d63d4, 2026-07-03) loads it "
            f"with: NANOCHAT_BASE_DIR={out} python -m scripts.chat_cli -i sft -g d3\n") in printed
    assert "cannot" not in printed
    meta = json.loads((out / "chatsft_checkpoints" / "d3" / "meta_000007.json").read_text())
    assert meta["lanbot"]["loaded_by"].startswith("nanochat from 2026-03-14") and meta["lanbot"]["padded_to"] == 64
    printed = run(c25)
    assert "nanochat from 2025-10-13 (3a5e0bc) up to 2025-12-09 (before f1bf69d) loads it" in printed
    assert torch.load(out / "chatsft_checkpoints" / "d2" / "model_000007.pt")["lm_head.weight"].shape[0] == m25.config.vocab_size
    assert "today's nanochat cannot" in printed and "train.init_from=nanochat:" in printed
    with pytest.raises(ExportError, match="mid_checkpoints: the nanochat of this model's 2026 GPT has no mid stage"):
        run(c26, "export.stage_dir=mid_checkpoints", "export.model_tag=m")
    with pytest.raises(ExportError, match="export.pad_vocab_to=10: no nanochat loads"):
        run(c25, "export.pad_vocab_to=10", "export.model_tag=p")
    assert not (out / "mid_checkpoints").exists() and not (out / "chatsft_checkpoints" / "p").exists()
    # a vocabulary that is a multiple of 64 needs no padding: every nanochat with the late-2025 GPT loads it
    assert nanochat_versions.model_window("nanochat-2025", 512, 512) == "nanochat from 2025-10-13 (3a5e0bc) up to 2026-01-16 (before e3f58b8)"
    assert nanochat_versions.model_window("nanochat-2026", 500, 500) is None


# -- against a real nanochat checkout -------------------------------------------------------------------------

NANOCHAT_DIR = os.environ.get("NANOCHAT_DIR")
NANOCHAT_SIDE = r'''
import json, sys, torch
from nanochat.checkpoint_manager import load_model
source, tag, ids_path, text_path, out = sys.argv[1:]
model, tok, meta = load_model(source, torch.device("cpu"), phase="eval", model_tag=tag)
ids = torch.load(ids_path)
with torch.no_grad():
    logits = model(ids).float()
specials = ["<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
            "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>"]
torch.save({"logits": logits, "ids": tok.encode(open(text_path, encoding="utf-8").read()),
            "specials": {s: tok.encode_special(s) for s in specials}, "step": meta["step"]}, out)
'''


def nanochat_run(args: list[str], base: Path, timeout: int = 900) -> str:
    python = os.environ.get("NANOCHAT_PYTHON") or str(Path(NANOCHAT_DIR) / ".venv" / "bin" / "python")
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(base), "PYTHONPATH": NANOCHAT_DIR, "WANDB_MODE": "disabled",
           "TORCHDYNAMO_DISABLE": "1",  # eager: torch.compile of a few CPU steps costs minutes of g++
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([python, *args], cwd=NANOCHAT_DIR, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"nanochat {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stderr + done.stdout  # nanochat logs to stderr; the answer ends stdout


def write_pretraining_shards(base: Path) -> None:
    """nanochat's pretraining data: parquet shards with a `text` column (the last one is val); 2025 reads
    base_data/, 2026 base_data_climbmix/."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(__file__).resolve().parent.parent
    docs = [p.read_text(encoding="utf-8") for p in sorted(root.glob("lanbot/**/*.py")) + [root / "README.md", *sorted(root.glob("docs/*.md"))]]
    docs = [d[i:i + 2000] for d in docs for i in range(0, len(d), 2000)]
    for name in ("base_data", "base_data_climbmix"):
        (base / name).mkdir(parents=True, exist_ok=True)
        for shard in range(2):
            part = docs[shard::2]
            pq.write_table(pa.table({"text": part}), base / name / f"shard_{shard:05d}.parquet", row_group_size=64)


@pytest.mark.slow
@pytest.mark.skipif(not NANOCHAT_DIR, reason="set NANOCHAT_DIR to a nanochat checkout (and NANOCHAT_PYTHON)")
def test_against_real_nanochat(tmp_path: Path) -> None:
    base = tmp_path / "nanochat"
    write_pretraining_shards(base)
    modern = (Path(NANOCHAT_DIR) / "nanochat" / "flash_attention.py").is_file()
    if modern:  # 2026: argparse flags with dashes, sliding windows, value embeddings
        nanochat_run(["-m", "scripts.tok_train", "--max-chars=2000000", "--vocab-size=1024"], base)
        nanochat_run(["-m", "scripts.base_train", "--depth=2", "--aspect-ratio=32", "--head-dim=16",
                      "--max-seq-len=256", "--window-pattern=SL", "--device-batch-size=2", "--total-batch-size=512",
                      "--num-iterations=4", "--eval-every=-1", "--core-metric-every=-1", "--sample-every=-1",
                      "--warmup-steps=0", "--device-type=cpu"], base)
    else:  # late 2025: its configurator's --key=value flags
        nanochat_run(["-m", "scripts.tok_train", "--max_chars=2000000", "--vocab_size=1024"], base)
        nanochat_run(["-m", "scripts.base_train", "--depth=2", "--max_seq_len=256", "--device_batch_size=2",
                      "--total_batch_size=512", "--num_iterations=4", "--eval_every=1000", "--eval_tokens=512",
                      "--core_metric_every=-1", "--sample_every=1000", "--device_type=cpu"], base)
    tag = "d2"
    model, tok, meta = import_checkpoint(f"nanochat:{base}/base_checkpoints/{tag}")
    assert model.config.architecture == ("nanochat-2026" if modern else "nanochat-2025")
    text = tmp_path / "corpus.txt"
    text.write_text(CORPUS + (Path(__file__).read_text(encoding="utf-8")[:6000]), encoding="utf-8")
    ids = torch.tensor([tok.encode(text.read_text(encoding="utf-8"))[:255]])
    torch.save(ids, tmp_path / "ids.pt")
    side = tmp_path / "side.py"
    side.write_text(NANOCHAT_SIDE)
    nanochat_run([str(side), "base", tag, str(tmp_path / "ids.pt"), str(text), str(tmp_path / "theirs.pt")], base)
    theirs = torch.load(tmp_path / "theirs.pt", weights_only=True)
    with torch.no_grad():
        diff = (model(ids) - theirs["logits"]).abs().max().item()
    print(f"\n[nanochat {'2026' if modern else '2025'}] import: max |logit diff| {diff:.2e} over {ids.numel()} tokens; "
          f"ids identical: {theirs['ids'] == tok.encode(text.read_text(encoding='utf-8'))}")
    assert diff < 1e-4
    assert theirs["ids"] == tok.encode(text.read_text(encoding="utf-8"))
    # a few steps leave the output projections near their zero init; random weights (GQA too) exercise every
    # part: nanochat's own GPT loads them from its checkpoint manager
    rand_cfg = (config_2026 if modern else config_2025)(tok.vocab_size)
    save_nanochat_checkpoint(base / "base_checkpoints" / "rand", random_state(rand_cfg, modern, 3, 64 if modern else 1),
                             rand_cfg, 1)
    rand, _, _ = import_checkpoint(f"nanochat:{base}/base_checkpoints/rand")
    nanochat_run([str(side), "base", "rand", str(tmp_path / "ids.pt"), str(text), str(tmp_path / "rand.pt")], base)
    theirs_rand = torch.load(tmp_path / "rand.pt", weights_only=True)["logits"]
    with torch.no_grad():
        rand_diff = (rand(ids) - theirs_rand).abs().max().item()
        wide = GPT(dataclasses.replace(rand.config, window_pattern="L"))  # the same weights, no windows
        wide.load_state_dict(rand.state_dict())
        windows = (wide(ids) - theirs_rand).abs().max().item()
    print(f"[nanochat {'2026' if modern else '2025'}] random weights: max |logit diff| {rand_diff:.2e} (logit std "
          f"{theirs_rand.std().item():.2f})" + (f"; without the windows {windows:.2e}" if modern else ""))
    assert rand_diff < 1e-4 and (not modern or windows > 1e-2)
    assert theirs["specials"] == {s: tok.special_id(s) for s in SPECIALS}

    # lanbot's mid on top, exported back as an SFT checkpoint: nanochat's manager and chat CLI load it
    make_data_folder(tmp_path / "data" / "sage", per_type=12, name="Sage")
    mid = train(compose_config(train_overrides(tmp_path, f"nanochat:{base}/base_checkpoints/{tag}", "identity=sage")),
                tmp_path / "run_mid")
    trained, _, _ = ckpt.load_checkpoint(mid["checkpoint"])
    export_checkpoint(Path(mid["checkpoint"]), base, tag="sage")
    nanochat_run([str(side), "sft", "sage", str(tmp_path / "ids.pt"), str(text), str(tmp_path / "sft.pt")], base)
    with torch.no_grad():
        diff = (trained(ids) - torch.load(tmp_path / "sft.pt", weights_only=True)["logits"]).abs().max().item()
    print(f"[nanochat {'2026' if modern else '2025'}] export: max |logit diff| {diff:.2e}")
    assert diff < 1e-4
    out = nanochat_run(["-m", "scripts.chat_cli", "-i", "sft", "-g", "sage", "-p", "who are you?",
                        "--device-type=cpu", "-t", "0"], base, timeout=600)
    print(f"[nanochat {'2026' if modern else '2025'}] chat_cli on the export: {out[out.rindex('Assistant:'):][:160]!r}")
    assert f"Loading model from {base / 'chatsft_checkpoints' / 'sage'}" in out


MODEL_SIDE = r'''
import json, sys, torch
from nanochat.checkpoint_manager import load_model
ids_path, out, *tags = sys.argv[1:]
ids, results = torch.load(ids_path), {}
for tag in tags:
    try:
        model, tok, meta = load_model("sft", torch.device("cpu"), phase="eval", model_tag=tag)
    except Exception as exc:  # what nanochat says when it refuses the checkpoint
        results[tag] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        continue
    with torch.no_grad():
        results[tag] = model(ids).float()
torch.save(results, out)
'''
CUSTOMJSON_SIDE = r'''
import json, sys
from tasks.customjson import CustomJSON
from nanochat.tokenizer import get_tokenizer
task, tok = CustomJSON(filepath=sys.argv[1]), get_tokenizer()
rows = [task.get_example(i)["messages"] for i in range(task.num_examples())]
rendered = [tok.render_conversation({"messages": m})[0] for m in rows]  # what its SFT trains on
json.dump({"rows": rows, "tokens": [len(r) for r in rendered],
           "decoded": tok.decode(rendered[0])}, open(sys.argv[2], "w", encoding="utf-8"))
'''


def in_history(commit: str) -> bool | None:
    """Whether `commit` is in the history of the checkout at NANOCHAT_DIR; None when that is no git clone of nanochat."""
    done = subprocess.run(["git", "-C", NANOCHAT_DIR, "merge-base", "--is-ancestor", commit, "HEAD"], capture_output=True)
    return {0: True, 1: False}.get(done.returncode)


@pytest.mark.skipif(not NANOCHAT_DIR, reason="set NANOCHAT_DIR to a nanochat checkout (and NANOCHAT_PYTHON)")
def test_model_exports_load_in_the_nanochat_they_name(nanochat_base: dict, tmp_path: Path) -> None:
    """lanbot's own GPT (rows padded and not) and a 2026 one, exported and loaded by this checkout's own checkpoint
    manager: exactly those whose export names this nanochat load, with the same logits; the others are refused."""
    base, vocab = nanochat_base["base"], nanochat_base["vocab"]
    m26, tok, meta26 = import_checkpoint(f"nanochat:{base}/base_checkpoints/d3")
    own = own_2025_model(vocab)
    models = {"a2026": (m26, meta26.base, None), "own64": (own, None, None), "own1": (own, None, 1)}
    out, windows, commits = tmp_path / "export", {}, {}
    for tag, (model, source, pad) in models.items():
        folder = lanbot_checkpoint(tmp_path / tag, model, tok, source)
        files = export_checkpoint(folder, out, tag=tag, pad_to=pad)
        windows[tag] = json.loads(files["meta"].read_text())["lanbot"]["loaded_by"]
        commits[tag] = nanochat_versions.model_commits(model.config.architecture, vocab, int(
            torch.load(files["model"], weights_only=True)["lm_head.weight"].shape[0]))
    ids = torch.tensor([tok.encode(CORPUS)[:200]])
    torch.save(ids, tmp_path / "ids.pt")
    (tmp_path / "side.py").write_text(MODEL_SIDE)
    nanochat_run([str(tmp_path / "side.py"), str(tmp_path / "ids.pt"), str(tmp_path / "got.pt"), *models], out)
    got = torch.load(tmp_path / "got.pt", weights_only=True)
    gpt = (Path(NANOCHAT_DIR) / "nanochat" / "gpt.py").read_text(encoding="utf-8")
    if "smear_gate" in gpt:  # the 2026 GPT (Mar 14 2026 on)
        expected = {"a2026"}
    elif "value_embed" in gpt:  # Jan 16 to Mar 14 2026: neither GPT lanbot writes
        expected = set()
    else:  # the late-2025 GPT: rows padded to 64 from Dec 9 2025 (vocab here is not a multiple of 64)
        expected = {"own64"} if "pad_vocab_size_to" in gpt else {"own1"}
    loaded = {tag for tag, r in got.items() if isinstance(r, torch.Tensor)}
    print(f"\n[nanochat {NANOCHAT_DIR}] loads {sorted(loaded)}; refuses "
          + "; ".join(f"{t}: {got[t][:90]}" for t in sorted(set(got) - loaded)))
    assert loaded == expected
    for tag in loaded:
        with torch.no_grad():
            diff = (models[tag][0](ids) - got[tag]).abs().max().item()
        print(f"  {tag}: max |logit diff| {diff:.2e}; the export says: {windows[tag]}")
        # lanbot's own GPT keeps float32 rotary tables, the late-2025 nanochat rounds them to bfloat16 (~2e-3)
        assert diff < (1e-4 if tag == "a2026" else 1e-2)
    if in_history("3a5e0bc") is not None:  # a git clone: the commits each export names are the ones that load it
        claimed = {tag for tag, (since, until) in commits.items() if in_history(since) and not (until and in_history(until))}
        assert claimed == loaded


@pytest.mark.skipif(not NANOCHAT_DIR, reason="set NANOCHAT_DIR to a nanochat checkout (and NANOCHAT_PYTHON)")
def test_data_export_reads_in_nanochat_customjson(nanochat_base: dict, tmp_path: Path, capsys) -> None:
    """The data export, read back by this checkout's CustomJSON and rendered by its tokenizer as its SFT does."""
    if not (Path(NANOCHAT_DIR) / "tasks" / "customjson.py").is_file():
        pytest.skip(f"{NANOCHAT_DIR} has no tasks/customjson.py: the data export is for nanochat "
                    f"{nanochat_versions.CUSTOMJSON_COMMITS}, and its forks")
    make_data_folder(tmp_path / "data" / "sage", per_type=6, name="Sage")
    out = tmp_path / "export"
    (out / "tokenizer").mkdir(parents=True)
    for name in ("tokenizer.pkl", "token_bytes.pt"):
        (out / "tokenizer" / name).write_bytes((nanochat_base["base"] / "tokenizer" / name).read_bytes())
    target = export_app(compose_config([f"paths.root={tmp_path}", "identity=sage", f"export.base_dir={out}",
                                        "export.types=[identity,tool_use]", "export.tool_calls=render"]))
    assert "read by nanochat's CustomJSON: nanochat from 2025-10-21 (fe5aed9) up to 2026-07-03 (before 950a1dc" \
        in capsys.readouterr().out
    (tmp_path / "side.py").write_text(CUSTOMJSON_SIDE)
    nanochat_run([str(tmp_path / "side.py"), str(target), str(tmp_path / "read.json")], out)
    read = json.loads((tmp_path / "read.json").read_text(encoding="utf-8"))
    written = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert read["rows"] == written and len(written) == 12 and all(n > 10 for n in read["tokens"])
    assert "<|assistant_start|>I am Sage" in read["decoded"]
    assert any("<<" in m["content"] for row in written for m in row)  # the rendered calculator calls made it in
