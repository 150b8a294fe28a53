"""The model seam: a new model family is its own module and one `register_architecture` call. A toy family (a
bigram model: each token's logits from the token alone) registered here trains through the one training loop,
is saved and loaded by the checkpoint code, and samples in the engine, with no lanbot file edited."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from engine_fixtures import tokenizer
from train_fixtures import make_data_folder

from lanbot.core.config import compose_config
from lanbot.evaluation.engine import Engine
from lanbot.training import checkpoint as ckpt
from lanbot.training import models
from lanbot.training.run import train
from lanbot.training.tokenizer import render_for_completion

TOY = "toy-bigram"


@dataclass
class BigramConfig:
    vocab_size: int = 400
    sequence_len: int = 256
    n_layer: int = 1  # the shape fields every config carries (the KV cache and the settings check read them)
    n_head: int = 1
    n_kv_head: int = 1
    n_embd: int = 16
    head_dim: int = 16
    architecture: str = TOY


class Bigram(nn.Module):
    """Next-token logits from the current token alone; ignores the KV cache but moves its position on."""

    def __init__(self, config: BigramConfig) -> None:
        super().__init__()
        self.config = config
        self.rotary_len = config.sequence_len
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.out = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, idx, targets=None, kv_cache=None, reduction: str = "mean"):
        logits = self.out(self.embed(idx))
        if kv_cache is not None:
            kv_cache.pos += idx.shape[1]
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1, reduction=reduction)
        return loss.view(targets.shape) if reduction == "none" else loss  # per position (B, T), 0 where ignored

    def init_weights(self) -> None:
        nn.init.normal_(self.embed.weight, std=1.0)
        nn.init.zeros_(self.out.weight)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self) -> int:
        return 6 * self.out.weight.numel()

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"embedding": [self.embed.weight], "lm_head": [self.out.weight], "matrix": [], "scalar": []}


def build_bigram(model_config) -> Bigram:
    known = {f.name for f in fields(BigramConfig)}
    return Bigram(BigramConfig(**{k: v for k, v in dict(model_config).items() if k in known}))


@pytest.fixture(scope="module", autouse=True)
def registered():
    models.register_architecture(TOY, build_bigram)
    yield
    models._BUILDERS.pop(TOY)


def test_a_registered_family_trains_saves_loads_and_samples(tmp_path: Path) -> None:
    tok = tokenizer()
    start = models.build_model({"architecture": TOY, "vocab_size": tok.vocab_size})
    assert isinstance(start, Bigram) and TOY in models.architectures()
    start.init_weights()
    cfg = compose_config([f"paths.root={tmp_path}", "identity=sage", "logger=none"])
    folder = ckpt.save_checkpoint(tmp_path / "toy-start", start, None, tok, cfg, {"stage": "mid", "step": 0})
    make_data_folder(tmp_path / "data" / "sage", per_type=8, name="Sage")
    result = train(compose_config([
        f"paths.root={tmp_path}", "identity=sage", "logger=none", "stage=mid", f"train.init_from={folder}",
        "train.sequence_len=128", "train.device_batch_size=4", "train.total_batch_tokens=512", "train.max_steps=3",
        "train.eval_every=3", "train.checkpoint_every=3", "train.eval_at_end=false", "mix.mid.chat.limit=4",
        "train.embedding_lr=0.1", "train.unembedding_lr=0.1"]), tmp_path / "run")
    model, tok2, meta = ckpt.load_checkpoint(result["checkpoint"])
    assert isinstance(model, Bigram) and meta.model_config["architecture"] == TOY and meta.step == 3
    assert not torch.equal(model.out.weight, start.out.weight)  # it trained (the lm_head started at zero)
    prompt = render_for_completion(tok2, [{"role": "user", "content": "who are you?"}])
    answers = Engine(model, tok2).generate(prompt, num_samples=2, max_tokens=5, temperature=1.0, seed=0)
    assert len(answers) == 2 and all(1 <= len(a.tokens) <= 5 for a in answers)


def test_an_unknown_architecture_is_one_line() -> None:
    with pytest.raises(models.UnknownArchitecture, match="'nope' is not one lanbot builds: choose one of"):
        models.build_model({"architecture": "nope"})
    with pytest.raises(ValueError, match="already registered"):
        models.register_architecture(TOY, build_bigram)
