"""lanbot's Llama out as a Hugging Face folder: import_hf_folder reads it back to the same config and tensors,
transformers loads it (AutoModelForCausalLM logits equal lanbot's forward, AutoTokenizer ids equal, the chat
template applies), llama.cpp's converter converts it where one is installed; and the faults: a non-empty folder,
a planted link, LoRA adapters, an unknown special token, a full disk, Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fault_checks import snapshot
from pretrained_fixtures import CHATML, hf_model, tiny_tokenizer, write_hf_folder

from lanbot.core.files import FileIOError, LinkRefused
from lanbot.sharing import hf_export
from lanbot.sharing.hf_export import HFExportError, export_hf_folder, family_of
from lanbot.sharing.hf_import import import_hf_folder
from lanbot.sharing.pretrained import PretrainedImportError
from lanbot.training.llama import Llama, LlamaConfig

pytest.importorskip("transformers")
TOL = dict(atol=2e-5, rtol=1e-4)
CHAT = {"bos": "<|im_start|>", "eos": "<|im_end|>", "pad": "<|im_end|>"}
STRINGS = ["Why is the sky blue?", "17 x 23 = 391", "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
           "Ünïcödé 🙂\ttabs  and   spaces\n\nnew lines", "def f(x):\n    return x ** 2"]
SHAPE = dict(vocab_size=320, n_layer=2, n_head=4, n_kv_head=2, n_embd=64, intermediate_size=96, sequence_len=256)
CONFIGS = {  # each detail config.json must carry back: family, tied embeddings, biases, rope base and scaling
    "llama": LlamaConfig(**SHAPE, rms_norm_eps=1e-5),
    "llama-tied-llama3-rope-biases": LlamaConfig(**SHAPE, tie_word_embeddings=True, rope_theta=500000.0,
                                                 rope_scaling_type="llama3", rope_factor=8.0,
                                                 rope_original_max_len=64, attention_bias=True,
                                                 attention_out_bias=True, mlp_bias=True),
    "qwen2-tied": LlamaConfig(**SHAPE, tie_word_embeddings=True, attention_bias=True, rms_norm_eps=1e-6,
                              rope_theta=1000000.0),
}


def random_model(config: LlamaConfig, seed: int = 0) -> Llama:
    """lanbot's model with every weight random, norms and biases too (so a dropped one shows in the logits)."""
    torch.manual_seed(seed)
    model = Llama(config).eval()
    model.init_weights(std=0.2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.5)
            elif "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


def export(model: Llama, folder: Path, **kwargs) -> Path:
    return export_hf_folder(model.config, model.state_dict(), tiny_tokenizer(), CHATML, CHAT, folder, **kwargs)


def _ids(seed: int = 1, batch: int = 2, length: int = 24) -> torch.Tensor:
    return torch.randint(0, 320, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_export_imports_back_to_the_same_model(tmp_path, name):
    model = random_model(CONFIGS[name])
    folder = export(model, tmp_path / "out")
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json",
        "tokenizer_config.json"]
    again = import_hf_folder(folder)
    assert vars(again.config) == vars(model.config)
    state = model.state_dict()
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight")
    assert set(again.state_dict) == set(state)
    for key, tensor in state.items():
        assert torch.equal(again.state_dict[key], tensor), key
    assert again.chat_template == CHATML and again.special_tokens == CHAT
    for text in STRINGS:
        assert again.tokenizer.encode(text).ids == tiny_tokenizer().encode(text).ids
    hf = json.loads((folder / "config.json").read_text())
    assert hf["architectures"] == ["Qwen2ForCausalLM" if name.startswith("qwen2") else "LlamaForCausalLM"]
    assert hf["torch_dtype"] == "float32" and hf["eos_token_id"] == tiny_tokenizer().token_to_id("<|im_end|>")
    assert not list(tmp_path.glob(".out.*")), "the temp folder and lock are gone"


def test_export_of_an_imported_folder_is_the_same_folder_again(tmp_path):
    """transformers' own save_pretrained -> lanbot import -> export -> import: the same tensors and config."""
    source = import_hf_folder(write_hf_folder(hf_model("qwen2", tie_word_embeddings=True), tmp_path / "hf"))
    folder = export_hf_folder(source.config, source.state_dict, source.tokenizer, source.chat_template,
                              source.special_tokens, tmp_path / "out")
    again = import_hf_folder(folder)
    assert vars(again.config) == vars(source.config) and again.special_tokens == source.special_tokens
    assert all(torch.equal(again.state_dict[k], v) for k, v in source.state_dict.items())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_transformers_loads_the_export(tmp_path, name):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = random_model(CONFIGS[name])
    folder = export(model, tmp_path / "out")
    reference = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert type(reference).__name__ == json.loads((folder / "config.json").read_text())["architectures"][0]
    with torch.no_grad():
        torch.testing.assert_close(reference(_ids()).logits, model(_ids()), **TOL)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    mine = tiny_tokenizer()
    for text in STRINGS:
        assert tokenizer(text, add_special_tokens=False).input_ids == mine.encode(text).ids, text
        assert tokenizer.decode(mine.encode(text).ids) == text
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (CHAT["bos"], CHAT["eos"], CHAT["pad"])
    assert "<|endoftext|>" in tokenizer.all_special_tokens  # a special token bos/eos/pad do not name
    assert tokenizer.decode(mine.encode("<|endoftext|>Hi").ids, skip_special_tokens=True) == "Hi"
    messages = [{"role": "system", "content": "You are Sage."}, {"role": "user", "content": "Why is the sky blue?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are Sage.<|im_end|>\n<|im_start|>user\nWhy is the sky blue?<|im_end|>\n"
                    "<|im_start|>assistant\n")
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert list(ids) == mine.encode(text).ids
    assert ids[0] == mine.token_to_id("<|im_start|>") and mine.token_to_id("<|im_end|>") in ids


def test_bfloat16_export_holds_the_rounded_weights(tmp_path):
    from safetensors import safe_open

    model = random_model(CONFIGS["qwen2-tied"])
    folder = export(model, tmp_path / "out", dtype="bfloat16")
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}  # noqa: SIM118
    again = import_hf_folder(folder)
    weight = model.model.layers[0].mlp.up_proj.weight
    assert torch.equal(again.state_dict["model.layers.0.mlp.up_proj.weight"], weight.bfloat16().float())
    assert json.loads((folder / "config.json").read_text())["torch_dtype"] == "bfloat16"


# -- llama.cpp's converter --------------------------------------------------------------------------------------

def find_converter() -> Path | None:
    """llama.cpp's convert_hf_to_gguf.py: $LLAMA_CPP_CONVERTER, on PATH, or shipped beside the installed
    llama_cpp or gguf packages (their wheels do not ship it today: llama-cpp-python 0.2.60, gguf 0.19.0)."""
    candidates = [os.environ.get("LLAMA_CPP_CONVERTER", "")]
    candidates += [shutil.which(name) or "" for name in ("convert_hf_to_gguf.py", "convert-hf-to-gguf.py")]
    for package in ("llama_cpp", "gguf"):
        try:
            root = Path(__import__(package).__file__).parent
        except ImportError:
            continue
        candidates += [str(p) for p in root.rglob("convert*hf*to*gguf*.py")]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def test_llama_cpp_converter_accepts_the_export(tmp_path):
    converter = find_converter()
    if converter is None:
        pytest.skip("no llama.cpp convert_hf_to_gguf.py on this machine (not in the llama_cpp or gguf packages, not "
                    "on PATH); set LLAMA_CPP_CONVERTER to one (a llama.cpp checkout's) to run this check")
    model = random_model(CONFIGS["llama"])
    folder = export(model, tmp_path / "out")
    out = tmp_path / "model.gguf"
    proc = subprocess.run([sys.executable, str(converter), str(folder), "--outfile", str(out), "--outtype", "f32"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from lanbot.sharing.gguf_import import import_gguf

    converted = import_gguf(out)  # lanbot's GGUF import undoes the converter's permutation: the same model again
    with torch.no_grad():
        torch.testing.assert_close(converted.model()(_ids()), model(_ids()), **TOL)


def test_gguf_of_the_export_runs_in_llama_cpp(tmp_path):
    """Where llama.cpp's converter is missing (the test above skips), the nearest check this machine allows:
    the export as transformers loads it, written as GGUF by the fixtures' stand-in for the converter (the gguf
    package's writer with the converter's tensor names and Q/K permutation), runs in llama.cpp itself
    (llama-cpp-python) with lanbot's logits, up to llama.cpp's float32 accumulation (0.012 of 7.6 seen)."""
    import numpy as np
    from pretrained_fixtures import write_gguf
    from transformers import AutoModelForCausalLM

    llama_cpp = pytest.importorskip("llama_cpp")
    model = random_model(CONFIGS["llama"])
    reference = AutoModelForCausalLM.from_pretrained(export(model, tmp_path / "out")).eval()
    path = write_gguf(reference, tmp_path / "export.gguf", tiny_tokenizer())
    runner = llama_cpp.Llama(str(path), logits_all=True, verbose=False, n_ctx=64, n_threads=1)
    ids = _ids(batch=1)[0].tolist()
    runner.eval(ids)
    theirs = torch.tensor(np.array(runner.scores[: len(ids)]))
    with torch.no_grad():
        ours = model(torch.tensor([ids]))[0]
    torch.testing.assert_close(theirs, ours, atol=5e-2, rtol=1e-2)
    assert torch.equal(theirs.argmax(-1), ours.argmax(-1))


# -- faults: one line, nothing written or lost ------------------------------------------------------------------

def test_non_empty_folder_file_and_link_refused_leaving_them_as_they_were(tmp_path):
    model = random_model(CONFIGS["qwen2-tied"])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(HFExportError, match="busy is not empty; an export never overwrites a folder") as err:
        export(model, tmp_path / "busy")
    assert "\n" not in str(err.value) and snapshot(tmp_path) == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(HFExportError, match="file is a file"):
        export(model, tmp_path / "file")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(LinkRefused, match="link is a symbolic link to .*elsewhere"):
        export(model, tmp_path / "link")
    assert not any((tmp_path / "elsewhere").iterdir())
    (tmp_path / "empty").mkdir()
    assert export(model, tmp_path / "empty").is_dir() and (tmp_path / "empty" / "model.safetensors").is_file()


def test_wrong_state_lora_adapters_and_unknown_special_token_refused_before_writing(tmp_path):
    model = random_model(CONFIGS["llama"])
    state = model.state_dict()
    tok = tiny_tokenizer()
    with pytest.raises(HFExportError, match="holds LoRA adapters .*merge_lora"):
        export_hf_folder(model.config, {**state, "model.layers.0.self_attn.q_proj.lora_A": torch.zeros(2, 64)}, tok,
                         CHATML, CHAT, tmp_path / "a")
    bad = {**state, "model.layers.0.mlp.up_proj.weight": torch.zeros(3, 3)}
    with pytest.raises(PretrainedImportError, match="the model to export: tensor 'model.layers.0.mlp.up_proj.weight'"):
        export_hf_folder(model.config, bad, tok, CHATML, CHAT, tmp_path / "b")
    missing = {k: v for k, v in state.items() if k != "model.norm.weight"}
    with pytest.raises(PretrainedImportError, match="lacks the tensors model.norm.weight"):
        export_hf_folder(model.config, missing, tok, CHATML, CHAT, tmp_path / "c")
    with pytest.raises(HFExportError, match="eos='</s>' is not in the tokenizer's vocabulary"):
        export_hf_folder(model.config, state, tok, CHATML, {"eos": "</s>"}, tmp_path / "d")
    with pytest.raises(HFExportError, match="dtype='int8'"):
        export(model, tmp_path / "e", dtype="int8")
    with pytest.raises(HFExportError, match="o_proj bias alone"):
        family_of(LlamaConfig(**SHAPE, attention_out_bias=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("fault", [KeyboardInterrupt(), RuntimeError("I/O error: (os error 28)")])
def test_interrupted_or_full_disk_export_leaves_nothing(tmp_path, monkeypatch, fault):
    """Ctrl-C or a full disk in the middle (safetensors says `os error 28` in a bare error): no folder, no temp
    folder; a full disk is one line naming the folder; the next export then succeeds."""
    model = random_model(CONFIGS["llama"])

    def failing_save(tensors, path, metadata=None):
        Path(path).write_bytes(b"half a file")
        raise fault

    monkeypatch.setattr(hf_export, "save_file", failing_save)
    expected = KeyboardInterrupt if isinstance(fault, KeyboardInterrupt) else FileIOError
    with pytest.raises(expected) as err:
        export(model, tmp_path / "out")
    if expected is FileIOError:
        assert "model.safetensors: No space left on device; free some space" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.undo()
    (tmp_path / ".out.tmp-999999").mkdir()  # a killed export's temp folder: removed by the next export
    assert import_hf_folder(export(model, tmp_path / "out")).config == model.config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# -- the real bundled SmolLM2 -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_bundled_smollm2_gguf_exported_loads_in_transformers(tmp_path):
    """The bundled SmolLM2-135M-Instruct GGUF -> lanbot -> Hugging Face folder: transformers' logits equal lanbot's,
    its tokenizer's ids equal the GGUF's rebuilt one, its chat template renders as lanbot's (SmolLM's default
    system prompt included). 15-40 s on 2 shared cores (the dequantizing import)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lanbot.core.errors import LanbotError
    from lanbot.generation.llm.local_server import bundled_model
    from lanbot.sharing.gguf_import import import_gguf

    try:
        path = bundled_model()
    except LanbotError as exc:
        pytest.skip(f"the bundled SmolLM2 GGUF is not installed ({exc})")
    pretrained = import_gguf(path)
    folder = export_hf_folder(pretrained.config, pretrained.state_dict, pretrained.tokenizer, pretrained.chat_template,
                              pretrained.special_tokens, tmp_path / "smollm2")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    messages = [{"role": "user", "content": "Why is the sky blue?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    ids = pretrained.tokenizer.encode(prompt).ids
    assert tokenizer(prompt, add_special_tokens=False).input_ids == ids
    for text in STRINGS:
        assert tokenizer(text, add_special_tokens=False).input_ids == pretrained.tokenizer.encode(text).ids, text
    reference = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        torch.testing.assert_close(reference(torch.tensor([ids])).logits, pretrained.model()(torch.tensor([ids])),
                                   atol=1e-3, rtol=1e-4)
