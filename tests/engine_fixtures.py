"""Models for the engine, chat and evaluation tests: a random tiny GPT, a tokenizer trained on a few texts,
a saved checkpoint of them, and a stand-in model whose next token follows a script."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from omegaconf import DictConfig

from lanbot.core.identity import slug
from lanbot.training.checkpoint import save_checkpoint
from lanbot.training.model import GPT, GPTConfig
from lanbot.training.tokenizer import Tokenizer

TEXTS = [
    "I am LanBot, a helpful AI agent made by Gene Kobilansky.",
    "Sage here: a patient teacher who loves explaining things.",
    "Let me compute it with the calculator: 2 + 3 * 4 = 14.",
    "The answer is 954.5 dollars, and 187.4 / 4 = 46.85 each.",
    "Who are you? What is your name? Who created you? What can you do?",
] * 4


@lru_cache(maxsize=1)
def tokenizer() -> Tokenizer:
    return Tokenizer.train(TEXTS, vocab_size=400)


def random_gpt(vocab_size: int, seed: int = 0, n_layer: int = 2, n_embd: int = 32) -> GPT:
    """A random GPT whose blocks really change the output (output projections non-zero)."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(sequence_len=64, vocab_size=vocab_size, n_layer=n_layer, n_head=2, n_kv_head=2, n_embd=n_embd))
    model.init_weights()
    with torch.no_grad():
        for block in model.transformer.h:
            block.attn.c_proj.weight.normal_(std=0.2)
            block.mlp.c_proj.weight.normal_(std=0.2)
        model.lm_head.weight.normal_(std=1.0)
    return model.eval()


def save_random_checkpoint(cfg: DictConfig, stage: str = "sft", identity: str | None = None, seed: int = 0) -> Path:
    """A checkpoint of a random GPT at the place cfg's identity/mix/model/stage points to."""
    tok = tokenizer()
    model = random_gpt(tok.vocab_size, seed)
    name = identity or cfg.identity.name
    directory = Path(cfg.paths.checkpoints) / slug(name) / str(cfg.mix.name) / str(cfg.model.name) / stage
    meta = {"step": 1, "stage": stage, "finished": True, "identity": name, "identity_slug": slug(name),
            "mix": cfg.mix.name, "model": cfg.model.name, "val_loss": 5.0, "val_bpb": 2.0, "run_dir": "none"}
    return save_checkpoint(directory, model, None, tok, cfg, meta)


class ScriptedModel(torch.nn.Module):
    """A stand-in GPT: row b's next token after position i is scripts[b][i - prompt_len + 1], whatever it
    was fed, so a test decides exactly what the model 'writes'. Works with and without a KVCache; with
    `prompt_len=None` the prompt is whatever a fresh cache is first fed (several prompts, as in a chat)."""

    def __init__(self, scripts: list[list[int]], prompt_len: int | None, vocab_size: int, filler: int = 0) -> None:
        super().__init__()
        self.scripts, self.prompt_len, self.filler = scripts, prompt_len or 0, filler
        self.auto_prompt = prompt_len is None
        self.prompts: list[list[int]] = []  # the prompts seen (auto mode)
        self.config = GPTConfig(sequence_len=256, vocab_size=vocab_size, n_layer=1, n_head=1, n_kv_head=1, n_embd=2)
        self.rotary_len = 10 * 256
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the engine a device and a dtype
        self.fed: list[list[int]] = []  # what the engine fed after the prompt, per call

    def forward(self, idx: torch.Tensor, targets=None, kv_cache=None) -> torch.Tensor:
        B, T = idx.shape
        start = kv_cache.pos if kv_cache is not None else 0
        if self.auto_prompt and kv_cache is not None and start == 0:
            self.prompt_len = T
            self.prompts.append(idx[0].tolist())
        if kv_cache is not None:
            kv_cache.pos += T
        self.fed.append(idx[:, -1].tolist())
        logits = torch.full((B, T, self.config.vocab_size), -10.0)
        for b in range(B):
            row = kv_cache.rows[b] if kv_cache is not None else b  # the engine drops finished rows
            script = self.scripts[row % len(self.scripts)]
            for t in range(T):
                k = start + t - self.prompt_len + 1
                token = script[k] if 0 <= k < len(script) else self.filler
                logits[b, t, token] = 10.0
        return logits
