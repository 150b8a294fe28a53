"""lanbot's Llama against transformers' own forward: tiny random Llama and Qwen2 checkpoints that transformers
writes (Hugging Face folders) and that the gguf package writes as llama.cpp would (GGUF), imported and compared
logit for logit; the seam, the loss, the KV cache; and the faults a hostile or broken file brings."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from pretrained_fixtures import CHATML, hf_model, tiny_tokenizer, write_gguf, write_hf_folder
from safetensors.torch import save_file

from lanbot.sharing import pretrained as bounds
from lanbot.sharing.gguf_import import import_gguf
from lanbot.sharing.hf_import import import_hf_folder, import_pretrained
from lanbot.sharing.pretrained import PretrainedImportError
from lanbot.training.llama import Llama, LlamaConfig
from lanbot.training.model import GPT, KVCache
from lanbot.training.models import UnknownArchitecture, architectures, build_model
from lanbot.training.optim import build_optimizer

pytest.importorskip("transformers")
TOL = dict(atol=2e-5, rtol=1e-4)
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64, "rope_theta": 500000.0}
STRINGS = ["Why is the sky blue?", "17 x 23 = 391", "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
           "Ünïcödé 🙂\ttabs  and   spaces\n\nnew lines", "def f(x):\n    return x ** 2"]


def _ids(seed: int = 1, batch: int = 2, length: int = 24) -> torch.Tensor:
    return torch.randint(0, 320, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family,overrides", [
    ("llama", {}),
    ("llama", {"tie_word_embeddings": True, "rope_parameters": LLAMA3_ROPE}),
    ("llama", {"attention_bias": True, "mlp_bias": True}),
    ("qwen2", {"tie_word_embeddings": True}),
], ids=["llama-gqa", "llama3-rope-tied", "llama-biases", "qwen2-biases-tied"])
def test_hf_folder_logits_equal_transformers(tmp_path, family, overrides):
    reference = hf_model(family, **overrides)
    imported = import_hf_folder(write_hf_folder(reference, tmp_path))
    model = imported.model()
    ids = _ids(length=100)  # past original_max_position_embeddings=64: the llama3 scaling is exercised
    with torch.no_grad():
        torch.testing.assert_close(model(ids), reference(ids).logits, **TOL)
    assert imported.chat_template == CHATML
    assert imported.special_tokens == {"bos": "<|im_start|>", "eos": "<|im_end|>", "pad": "<|im_end|>"}
    assert model.config.tie_word_embeddings == bool(overrides.get("tie_word_embeddings"))
    if model.config.tie_word_embeddings:
        assert model.lm_head.weight is model.model.embed_tokens.weight


def test_sharded_folder_and_bf16_weights(tmp_path):
    """transformers' sharded save (an index and several files) in bf16, as SmolLM2 ships: float32 on import."""
    reference = hf_model("llama").to(torch.bfloat16)
    reference.save_pretrained(tmp_path, max_shard_size="100KB")
    tiny_tokenizer().save(str(tmp_path / "tokenizer.json"))
    assert (tmp_path / "model.safetensors.index.json").is_file()
    imported = import_pretrained(tmp_path)
    assert all(t.dtype == torch.float32 for t in imported.state_dict.values())
    with torch.no_grad():
        torch.testing.assert_close(imported.model()(_ids()), reference.float()(_ids()).logits, **TOL)


def test_loss_and_gradients_equal_transformers(tmp_path):
    """The fused CPU loss is transformers' cross-entropy (ignored targets included), and so are its gradients."""
    reference = hf_model("llama", tie_word_embeddings=True)
    model = import_hf_folder(write_hf_folder(reference, tmp_path)).model().train()
    ids = _ids(length=33)
    labels = ids.clone()
    labels[0, :10] = -100  # transformers' ignore index; lanbot's is -1
    targets = labels[:, 1:].clone()
    targets[targets == -100] = -1
    expected = reference(ids, labels=labels).loss
    expected.backward()
    for fused in (True, False):
        model.zero_grad()
        model.fused_loss = fused
        loss = model(ids[:, :-1], targets)
        loss.backward()
        torch.testing.assert_close(loss, expected, **TOL)
        grad = model.model.embed_tokens.weight.grad
        torch.testing.assert_close(grad, reference.model.embed_tokens.weight.grad, atol=1e-5, rtol=1e-4)
    per_token = model(ids[:, :-1], targets, reduction="none")
    assert per_token.shape == targets.shape and bool((per_token[0, :9] == 0).all())


def test_kv_cache_decode_and_left_padding_equal_full_forward():
    """Prefill + one token at a time through lanbot's KVCache gives the full forward's logits; two prompts of
    different lengths left-padded in one batch (as the engine batches probes) give each one's own logits."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=320, n_layer=2, n_head=4, n_kv_head=2, n_embd=64, intermediate_size=96,
                         sequence_len=128, attention_bias=True)
    model = Llama(config).eval()
    model.init_weights(std=0.2)
    ids = _ids(batch=1, length=20)
    with torch.no_grad():
        full = model(ids)
        cache = KVCache(1, 32, config)
        steps = [model(ids[:, :12], kv_cache=cache)[:, -1]]
        steps += [model(ids[:, i : i + 1], kv_cache=cache)[:, -1] for i in range(12, 20)]
        torch.testing.assert_close(torch.stack(steps[1:], 1), full[:, 12:], **TOL)
        short, long_ = ids[0, :7].tolist(), ids[0].tolist()
        cache = KVCache(2, 32, config)
        cache.pad_left([len(short), len(long_)], len(long_))
        batch = torch.tensor([[0] * (len(long_) - len(short)) + short, long_])
        last = model(batch, kv_cache=cache)[:, -1]
        torch.testing.assert_close(last[0], model(torch.tensor([short]))[0, -1], **TOL)
        torch.testing.assert_close(last[1], full[0, -1], **TOL)


def test_build_model_is_the_seam_for_both_families(tmp_path):
    from safetensors.torch import load_model, save_model

    assert {"nanochat-2025", "nanochat-2026", "llama"} <= set(architectures())
    gpt = build_model({"sequence_len": 64, "vocab_size": 300, "n_layer": 1, "n_head": 2, "n_kv_head": 2, "n_embd": 32})
    assert isinstance(gpt, GPT) and gpt.config.architecture == "nanochat-2025"  # checkpoints before the seam
    fields = dict(architecture="llama", sequence_len=64, vocab_size=320, n_layer=2, n_head=4, n_kv_head=2, n_embd=64,
                  intermediate_size=96, tie_word_embeddings=True)
    llama = build_model(fields)
    assert isinstance(llama, Llama)
    llama.init_weights()
    # a checkpoint's round trip: meta.json's model_config is vars(config), the weights safetensors' save_model
    save_model(llama, str(tmp_path / "model.safetensors"))
    again = build_model(json.loads(json.dumps(vars(llama.config))))
    load_model(again, str(tmp_path / "model.safetensors"), strict=True)
    assert again.lm_head.weight is again.model.embed_tokens.weight
    with torch.no_grad():
        torch.testing.assert_close(again(_ids()), llama(_ids()))
    for name in ("adamw", "muon"):  # every parameter once, the tied one included; Muon only on matrices
        opt = build_optimizer(again, name)
        params = [p for g in opt.param_groups for p in g["params"]]
        assert len(params) == len({id(p) for p in params}) == len(list(again.parameters()))
    with pytest.raises(UnknownArchitecture, match="'mamba'.*llama"):
        build_model({**fields, "architecture": "mamba"})
    with pytest.raises(ValueError, match="n_kv_head=3 must divide n_head=4"):
        build_model({**fields, "n_kv_head": 3})


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_gguf_logits_tokenizer_and_template_equal(tmp_path, family):
    """A GGUF written as llama.cpp's converter writes it (Q/K permuted for llama) imports to transformers' logits,
    and its tokenizer, rebuilt from tokenizer.ggml.*, gives the trained tokenizer's ids."""
    reference = hf_model(family, tie_word_embeddings=family == "qwen2")
    tokenizer = tiny_tokenizer()
    imported = import_gguf(write_gguf(reference, tmp_path / "tiny.gguf", tokenizer, arch=family))
    with torch.no_grad():
        torch.testing.assert_close(imported.model()(_ids()), reference(_ids()).logits, **TOL)
    for text in STRINGS:
        assert imported.tokenizer.encode(text).ids == tokenizer.encode(text).ids, text
        assert imported.tokenizer.decode(imported.tokenizer.encode(text).ids, skip_special_tokens=False) == text
    assert imported.tokenizer.encode("<|im_start|>").ids == [tokenizer.token_to_id("<|im_start|>")]
    assert imported.chat_template == CHATML
    assert imported.special_tokens == {"bos": "<|im_start|>", "eos": "<|im_end|>"}


# -- faults: one named error, before anything large is allocated ----------------------------------------------

def _folder(tmp_path, **config_changes):
    write_hf_folder(hf_model("llama"), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(config_changes)
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


@pytest.mark.parametrize("changes,message", [
    ({"vocab_size": 1 << 30}, "vocab_size=1073741824 is outside"),
    ({"num_hidden_layers": 100, "hidden_size": 16384, "intermediate_size": 65536}, "B parameters, more than"),
    ({"model_type": "gpt2"}, "model_type 'gpt2' is not a family"),
    ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}}, "rope scaling 'yarn'"),
    ({"hidden_size": 96}, "tensor '[a-z_.]+' is \\[320, 64\\], the config says \\[320, 96\\]"),
])
def test_bad_config_refused_naming_the_field(tmp_path, changes, message):
    with pytest.raises(PretrainedImportError, match=message):
        import_hf_folder(_folder(tmp_path, **changes))


def test_missing_and_foreign_tensors_refused(tmp_path):
    folder = _folder(tmp_path)
    from safetensors.torch import load_file

    state = load_file(str(folder / "model.safetensors"))
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(PretrainedImportError, match="lacks the tensors model.layers.1.mlp.up_proj.weight"):
        import_hf_folder(folder)
    state["model.layers.1.mlp.up_proj.weight"] = torch.zeros(96, 64)
    state["model.layers.7.mlp.up_proj.weight"] = torch.zeros(96, 64)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(PretrainedImportError, match="'model.layers.7.mlp.up_proj.weight' has no place"):
        import_hf_folder(folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(PretrainedImportError, match="model.safetensors: cannot be read"):
        import_hf_folder(folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(PretrainedImportError, match="pytorch_model.bin is pickle"):
        import_hf_folder(folder)


def test_hostile_files_bounded_before_reading(tmp_path, monkeypatch):
    (tmp_path / "not.gguf").write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(PretrainedImportError, match="not a GGUF file"):
        import_pretrained(tmp_path / "not.gguf")
    (tmp_path / "huge.gguf").write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 3))
    with pytest.raises(PretrainedImportError, match="claims 1,099,511,627,776 tensors"):
        import_pretrained(tmp_path / "huge.gguf")
    folder = _folder(tmp_path / "hf")
    monkeypatch.setattr(bounds, "MAX_JSON_BYTES", 100)
    with pytest.raises(PretrainedImportError, match="config.json: .* bytes, more than the 100"):
        import_hf_folder(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PretrainedImportError, match="no config.json"):
        import_pretrained(tmp_path / "empty")


def test_gguf_with_foreign_tokenizer_or_architecture_refused(tmp_path):
    import gguf

    path = tmp_path / "other.gguf"
    w = gguf.GGUFWriter(str(path), "mamba")
    w.add_block_count(1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(PretrainedImportError, match="general.architecture='mamba'"):
        import_gguf(path)
