"""lanbot's LoRA on both model families: after a few optimizer steps (so B is no longer zero) the merged model's
logits equal the adapted model's, only the adapters train, the merged state dict has the original names and
shapes, an exact resume from a merged checkpoint plus its adapters, bf16 autocast, a merged LoRA model exported
to Hugging Face and loaded by transformers; and the settings refused in one line."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from pretrained_fixtures import hf_model, write_hf_folder

from lanbot.training.llama import Llama
from lanbot.training.lora import (
    GPT_TARGETS,
    LLAMA_TARGETS,
    LoRAError,
    LoRALinear,
    apply_lora,
    default_targets,
    load_lora_state_dict,
    lora_parameters,
    lora_settings,
    lora_state_dict,
    merge_lora,
    merged_copy,
    merged_state_dict,
)
from lanbot.training.models import build_model

TOL = dict(atol=2e-5, rtol=1e-4)
GPT_SHAPE = {"sequence_len": 64, "vocab_size": 300, "n_layer": 2, "n_head": 2, "n_kv_head": 2, "n_embd": 32}


def llama(family: str, tmp_path, **overrides) -> Llama:
    """lanbot's Llama imported from a tiny random checkpoint the fixtures write with transformers."""
    pytest.importorskip("transformers")
    from lanbot.sharing.hf_import import import_hf_folder

    return import_hf_folder(write_hf_folder(hf_model(family, **overrides), tmp_path / family)).model()


def gpt(architecture: str) -> nn.Module:
    torch.manual_seed(0)
    model = build_model({**GPT_SHAPE, "architecture": architecture})
    model.init_weights()
    return model


def _ids(vocab: int, seed: int = 1, batch: int = 2, length: int = 17) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def train_steps(model: nn.Module, vocab: int, steps: int = 4) -> list[float]:
    """A few AdamW steps on the adapters through the model's own loss (the fused CPU loss included)."""
    model.train()
    optimizer = torch.optim.AdamW(lora_parameters(model), lr=1e-2)
    losses = []
    for step in range(steps):
        ids = _ids(vocab, seed=step)
        loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    return losses


def models(tmp_path):
    return {"llama": (lambda: llama("llama", tmp_path), 320),
            "qwen2-tied": (lambda: llama("qwen2", tmp_path, tie_word_embeddings=True), 320),
            "gpt-2025": (lambda: gpt("nanochat-2025"), 300),
            "gpt-2026": (lambda: gpt("nanochat-2026"), 300)}


@pytest.mark.parametrize("name", ["llama", "qwen2-tied", "gpt-2025", "gpt-2026"])
def test_merge_equals_the_adapted_forward_after_training(tmp_path, name):
    build, vocab = models(tmp_path)[name]
    model = build().eval()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    ids = _ids(vocab, seed=99)
    with torch.no_grad():
        base_logits = model(ids)
    targets = default_targets(model)
    assert targets == (LLAMA_TARGETS if name.startswith(("llama", "qwen2")) else GPT_TARGETS)
    apply_lora(model, rank=4, alpha=8, dropout=0.1)
    adapted = {n for n, m in model.named_modules() if isinstance(m, LoRALinear)}
    per_layer = 7 if isinstance(model, Llama) else 6  # q k v o gate up down | c_q c_k c_v attn.c_proj c_fc mlp.c_proj
    assert len(adapted) == per_layer * 2 and not any(n.endswith(("lm_head", "ve_gate", "smear_gate")) for n in adapted)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith((".lora_A", ".lora_B")) for n in trainable)
    assert len(trainable) == 2 * len(adapted) == len(lora_parameters(model))
    with torch.no_grad():  # B starts at zero: the adapted model is the base exactly
        torch.testing.assert_close(model.eval()(ids), base_logits)

    train_steps(model, vocab)
    model.eval()
    assert all(float(p.detach().abs().max()) > 0 for n, p in model.named_parameters() if n.endswith("lora_B"))
    for key, value in original.items():  # the base never moved
        assert torch.equal(model.state_dict()[key], value), key
    with torch.no_grad():
        adapted_logits = model(ids)
    assert not torch.allclose(adapted_logits, base_logits, atol=1e-3), "the adapters changed the model"

    merged = merged_state_dict(model)
    assert {k: tuple(v.shape) for k, v in merged.items()} == {k: tuple(v.shape) for k, v in original.items()}
    fresh = build()
    fresh.load_state_dict(merged, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(ids), adapted_logits, **TOL)

    assert merge_lora(model) is model
    assert not [m for m in model.modules() if isinstance(m, LoRALinear)]
    assert all(type(model.get_submodule(n)) is nn.Linear for n in adapted)
    assert all(p.requires_grad for p in model.parameters()) and lora_settings(model) is None
    with torch.no_grad():
        torch.testing.assert_close(model(ids), adapted_logits, **TOL)
    if getattr(model.config, "tie_word_embeddings", False):
        assert model.lm_head.weight is model.model.embed_tokens.weight


def test_resume_from_a_merged_checkpoint_and_its_adapters(tmp_path):
    """Save = merged weights + adapters; resume = those weights, apply_lora, load_lora_state_dict(merged_base):
    the base is W again (to float rounding), the adapters exact, and training goes on to the same logits."""
    model = llama("llama", tmp_path)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    apply_lora(model, rank=4, alpha=16, dropout=0.0)
    train_steps(model, 320, steps=3)
    saved, adapters = merged_state_dict(model), {k: v.clone() for k, v in lora_state_dict(model).items()}
    assert set(adapters) == {f"{n}.{p}" for n in lora_settings(model)["modules"] for p in ("lora_A", "lora_B")}

    resumed = llama("llama", tmp_path / "again")
    resumed.load_state_dict(saved)
    apply_lora(resumed, rank=4, alpha=16, dropout=0.0)
    load_lora_state_dict(resumed, adapters, merged_base=True)
    for key, value in base.items():
        torch.testing.assert_close(resumed.state_dict()[key], value, atol=1e-6, rtol=0)
    ids = _ids(320)
    with torch.no_grad():
        torch.testing.assert_close(resumed.eval()(ids), model.eval()(ids), **TOL)
    with pytest.raises(LoRAError, match="resume with the same lora rank and targets"):
        load_lora_state_dict(resumed, {k: v for k, v in adapters.items() if "layers.1." not in k})
    wrong = apply_lora(llama("llama", tmp_path / "r8"), rank=8, alpha=16)
    with pytest.raises(LoRAError, match="is \\[4, 64\\], the model's is \\[8, 64\\]"):
        load_lora_state_dict(wrong, adapters)


def test_merged_copy_leaves_the_training_model_adapted(tmp_path):
    model = apply_lora(gpt("nanochat-2025"), rank=2, alpha=4)
    train_steps(model, 300, steps=2)
    copy = merged_copy(model)
    assert lora_settings(model)["rank"] == 2 and lora_settings(copy) is None
    ids = _ids(300)
    with torch.no_grad():
        torch.testing.assert_close(copy.eval()(ids), model.eval()(ids), **TOL)


def test_bf16_autocast_trains_the_adapters(tmp_path):
    """Training under CPU bf16 autocast: float32 adapters over the float32 base, gradients reach A and B only."""
    model = apply_lora(llama("qwen2", tmp_path), rank=4, alpha=8)
    ids = _ids(320)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.train()(ids[:, :-1], ids[:, 1:])
    loss.backward()
    assert all(p.grad is not None and p.dtype == torch.float32 for p in lora_parameters(model))
    assert all(p.grad is None for n, p in model.named_parameters() if not n.endswith(("lora_A", "lora_B")))
    assert float(model.model.layers[0].self_attn.q_proj.lora_B.grad.abs().sum()) > 0


def test_merged_lora_model_exports_to_transformers(tmp_path):
    """The whole path a LoRA run takes out: adapters trained, merged, exported, loaded by transformers."""
    from pretrained_fixtures import CHATML, tiny_tokenizer
    from transformers import AutoModelForCausalLM

    from lanbot.sharing.hf_export import HFExportError, export_hf_folder

    model = apply_lora(llama("llama", tmp_path), rank=4, alpha=8)
    train_steps(model, 320, steps=2)
    special = {"bos": "<|im_start|>", "eos": "<|im_end|>"}
    with pytest.raises(HFExportError, match="LoRA adapters"):
        export_hf_folder(model.config, model.state_dict(), tiny_tokenizer(), CHATML, special, tmp_path / "raw")
    folder = export_hf_folder(model.config, merged_state_dict(model), tiny_tokenizer(), CHATML, special, tmp_path / "out")
    reference = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = _ids(320)
    with torch.no_grad():
        torch.testing.assert_close(reference(ids).logits, model.eval()(ids), **TOL)


@pytest.mark.parametrize("kwargs,message", [
    ({"rank": 0}, "lora rank=0: must be a whole number of at least 1"),
    ({"rank": 2.5}, "lora rank=2.5"),
    ({"alpha": 0}, "lora alpha=0: must be positive"),
    ({"dropout": 1.0}, "lora dropout=1.0: must be in \\[0, 1\\)"),
    ({"targets": ("q_proj", "qkv")}, "lora target 'qkv' matches no linear layer of the model; its linear layers "
                                     "end in down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj"),
    ({"targets": ("lm_head",)}, "lora target 'lm_head': the lm_head is read as a weight by the fused loss"),
])
def test_bad_settings_refused_in_one_line_leaving_the_model_as_it_was(tmp_path, kwargs, message):
    model = llama("llama", tmp_path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = {"rank": 4, "alpha": 8, "dropout": 0.0, **kwargs}
    with pytest.raises(LoRAError, match=message) as err:
        apply_lora(model, **settings)
    assert "\n" not in str(err.value)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_adapters_applied_once_and_dotted_targets(tmp_path):
    model = apply_lora(gpt("nanochat-2025"), rank=2, alpha=4, targets=("mlp.c_proj",))
    assert lora_settings(model)["modules"] == ["transformer.h.0.mlp.c_proj", "transformer.h.1.mlp.c_proj"]
    with pytest.raises(LoRAError, match="already has LoRA adapters"):
        apply_lora(model, rank=2, alpha=4)
