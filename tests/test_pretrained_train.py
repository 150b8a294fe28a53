"""A pretrained chat model trained in its own chat format: ChatML rendering and masks against the model's own
Jinja template, the calculator as a ChatML tool call, the system-prompt forms, and sft straight from a tiny
Hugging Face checkpoint (written by transformers) through the model seam: save, load, sample, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest
import torch
from pretrained_fixtures import CHATML, hf_model, write_hf_folder
from train_fixtures import make_data_folder

from lanbot.core import layout
from lanbot.core.config import compose_config
from lanbot.evaluation.engine import Engine
from lanbot.evaluation.evaluate_checkpoint import evaluate_run
from lanbot.sharing.hf_export import HFExportError, export_app
from lanbot.training import checkpoint as ckpt
from lanbot.training.chat_format import CHATML as CHATML_FORMAT
from lanbot.training.chat_format import GENERIC_SYSTEM, default_system_prompt, format_of_template
from lanbot.training.llama import Llama
from lanbot.training.packing import render_all
from lanbot.training.pretrained_start import PretrainedStartError, start_from_pretrained
from lanbot.training.run import TrainError, train
from lanbot.training.settings_check import SettingsError
from lanbot.training.tokenizer import render_conversation, render_for_completion

pytest.importorskip("transformers")

SMOLLM2_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                    "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
                    "{% endif %}")
TALK = [{"role": "system", "content": "You are Sage."}, {"role": "user", "content": "Why is the sky blue?"},
        {"role": "assistant", "content": "Great question! Sunlight scatters off air molecules."},
        {"role": "user", "content": "And sunsets?"}, {"role": "assistant", "content": "Longer path, so red is left."}]
TOOL = [{"role": "user", "content": "What is 17 x 23?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me check."}, {"type": "python", "text": "17*23"},
                                          {"type": "python_output", "text": "391"}, {"type": "text", "text": "It is 391."}]}]


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hf_folder(hf_model("llama", seed=3, max_position_embeddings=512), tmp_path_factory.mktemp("hf") / "m")


def test_chat_format_is_found_from_the_template_and_the_default_system_prompt_read() -> None:
    assert format_of_template(CHATML, "x") is CHATML_FORMAT and format_of_template(SMOLLM2_TEMPLATE, "x").name == "chatml"
    assert default_system_prompt(SMOLLM2_TEMPLATE) == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    with pytest.raises(ValueError, match="neither ChatML .* nor Llama 3's"):
        format_of_template("{{ messages[0]['content'] }}", "some/model")


def test_chatml_rendering_equals_the_model_template_and_trains_on_assistant_tokens_only(tiny_hf: Path) -> None:
    _, tok, meta = start_from_pretrained(f"hf:{tiny_hf}")
    assert meta["pretrained"]["added_tokens"] == ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
    ids, mask = render_conversation(tok, TALK)
    expected = jinja2.Template(CHATML).render(messages=TALK, add_generation_prompt=False)
    assert tok.decode(ids) == expected  # the model's own template, token for token in text
    trained = tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert trained == "Great question! Sunlight scatters off air molecules.<|im_end|>Longer path, so red is left.<|im_end|>"
    prompt = render_for_completion(tok, TALK[:4])
    assert tok.decode(prompt) == jinja2.Template(CHATML).render(messages=TALK[:4], add_generation_prompt=True)
    assert tok.encode("<|im_end|>") != [tok.special_id("<|im_end|>")]  # typed by a user, it stays text


def test_the_calculator_is_a_chatml_tool_call_the_engine_runs(tiny_hf: Path) -> None:
    model, tok, _ = start_from_pretrained(f"hf:{tiny_hf}")
    ids, mask = render_conversation(tok, TOOL)
    text = tok.decode(ids)
    assert ('<tool_call>{"name": "calculator", "arguments": {"expression": "17*23"}}</tool_call>'
            '<tool_response>391</tool_response>') in text
    response = tok.encode_marker("<tool_response>")[0]
    assert mask[ids.index(response)] == 0 and mask[ids.index(tok.special_id("<tool_call>"))] == 1
    engine = Engine(model.eval(), tok)
    assert engine.parts(ids[len(render_for_completion(tok, TOOL[:1])):]) == TOOL[1]["content"]
    # the engine answers the model's call: feed the call tokens as what the model 'wrote'
    call = tok.encode_marker("<tool_call>") + tok.encode(CHATML_FORMAT.call_text("17*23")) + tok.encode_marker("</tool_call>")
    row = type("Row", (), {"tokens": [], "forced": [], "expr": None, "done": False, "finished": False})()
    for token in call:
        engine._advance(row, token, False)
    assert tok.decode(row.forced) == "<tool_response>391</tool_response>"


def test_system_prompt_forms_cycle_through_training_conversations(tiny_hf: Path) -> None:
    _, tok, _ = start_from_pretrained(f"hf:{tiny_hf}")
    tok.default_system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    plain = TALK[1:]
    docs = render_all(tok, [(0, plain)] * 4, ["none", "empty", "default", "generic"])
    texts = [tok.decode(d.ids) for d in docs]
    assert not texts[0].startswith("<|im_start|>system") and texts[1].startswith("<|im_start|>system\n<|im_end|>")
    assert "named SmolLM" in texts[2] and texts[3].startswith(f"<|im_start|>system\n{GENERIC_SYSTEM}<|im_end|>")
    assert render_all(tok, [(0, TALK)], ["generic"])[0].ids == render_conversation(tok, TALK)[0]  # the data's own kept


def overrides(root: Path, source: str, *extra: str) -> list[str]:
    return [f"paths.root={root}", "model=smollm2-135m", f"model.pretrained=hf:{source}", "identity=sage", "stage=sft",
            "train.sequence_len=128", "train.device_batch_size=4", "train.total_batch_tokens=512", "train.max_steps=3",
            "train.eval_every=3", "train.checkpoint_every=3", "train.eval_at_end=false", "mix.mid.chat.limit=10",
            "train.matrix_lr=0.003", "train.embedding_lr=0.003", "train.unembedding_lr=0.003", "logger=none", *extra]


def test_sft_straight_from_a_hugging_face_folder_saves_loads_and_samples(tiny_hf: Path, tmp_path: Path, capsys) -> None:
    make_data_folder(tmp_path / "data" / "sage", per_type=12, name="Sage")
    result = train(compose_config(overrides(tmp_path, str(tiny_hf))), tmp_path / "run")
    assert "sft starts from hf:" in capsys.readouterr().out  # no mid checkpoint, and none needed
    model, tok, meta = ckpt.load_checkpoint(result["checkpoint"])
    assert isinstance(model, Llama) and meta.model_config["architecture"] == "llama" and tok.chat.name == "chatml"
    assert meta.base["name"] == f"hf:{tiny_hf}" and meta.model_config["vocab_size"] == 324
    assert json.loads((Path(result["checkpoint"]) / layout.CHAT_FORMAT_FILE).read_text())["format"] == "chatml"
    start, _, _ = start_from_pretrained(f"hf:{tiny_hf}")
    idx = torch.tensor([render_conversation(tok, TALK)[0]])
    with torch.no_grad():
        assert (model(idx) - start(idx)).abs().max().item() > 1e-4  # training moved it
    prompt = render_for_completion(tok, [{"role": "user", "content": "who are you?"}])
    done = Engine(model, tok).generate([prompt, prompt[1:]], num_samples=2, max_tokens=6, temperature=1.0, seed=0)
    assert len(done) == 4 and all(c.tokens for c in done)
    scores = evaluate_run(compose_config(overrides(
        tmp_path, str(tiny_hf), "eval.samples=1", "eval.max_tokens=4", "eval.families=[identity]",
        "eval.capability_tokens=512", "eval.control=null", "eval.system_prompts=[empty,generic]")),
        Path(result["checkpoint"]), tmp_path / "run_eval")
    report = json.loads((tmp_path / "run_eval" / "eval.json").read_text())
    asked = [r for r in report["samples"] if r["family"] == "system"]
    assert {r["category"] for r in asked} == {"system/empty", "system/generic"} and len(asked) == 2 * 12
    assert scores["system/generic/identity_rate"] is not None and "system/default/identity_rate" not in scores
    assert scores["capability/base_bpb"] > 0 and scores["capability/base_right"] == 0.0  # a random model knows nothing
    assert scores["capability/retained"] is None  # so nothing could be kept

    out = export_app(compose_config(overrides(tmp_path, str(tiny_hf), f"export.hf_dir={tmp_path}/hf_out")))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_model_back, hf_tok = AutoModelForCausalLM.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        assert (hf_model_back(idx).logits - model(idx)).abs().max().item() < 1e-4
    assert hf_tok("<tool_call>", add_special_tokens=False)["input_ids"] == [tok.special_id("<tool_call>")]
    assert hf_tok.apply_chat_template(TALK[1:2], tokenize=False, add_generation_prompt=True) == tok.decode(
        render_for_completion(tok, TALK[1:2]))
    with pytest.raises(HFExportError, match="is not empty; an export never overwrites"):
        export_app(compose_config(overrides(tmp_path, str(tiny_hf), f"export.hf_dir={tmp_path}/hf_out")))


def test_a_source_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(PretrainedStartError, match="no such folder or file"):
        start_from_pretrained(f"hf:{tmp_path}/nothing.gguf")
    make_data_folder(tmp_path / "data" / "sage", per_type=4, name="Sage")
    with pytest.raises(TrainError, match=r"train.init_from=hf:\./missing: .*no such folder"):
        train(compose_config(overrides(tmp_path, "./missing")), tmp_path / "run")


def test_lora_sft_saves_merged_plain_weights_whose_change_is_low_rank(tiny_hf: Path, tmp_path: Path) -> None:
    make_data_folder(tmp_path / "data" / "sage", per_type=12, name="Sage")
    result = train(compose_config(overrides(tmp_path, str(tiny_hf), "train.lora.rank=2", "train.lora.alpha=4",
                                            "train.matrix_lr=0.05")), tmp_path / "run")
    folder = Path(result["checkpoint"])
    model, _, _ = ckpt.load_checkpoint(folder)  # strict: plain names and shapes, no adapter left in the weights
    assert (folder / "lora.safetensors").is_file()
    start, _, _ = start_from_pretrained(f"hf:{tiny_hf}")
    after, before = dict(model.named_parameters()), dict(start.named_parameters())
    change = after["model.layers.0.self_attn.q_proj.weight"] - before["model.layers.0.self_attn.q_proj.weight"]
    assert change.abs().max().item() > 1e-5 and torch.linalg.matrix_rank(change.detach(), atol=1e-6).item() <= 2
    frozen = "model.layers.0.input_layernorm.weight"
    assert torch.equal(after[frozen], before[frozen])  # only the adapters trained
    with pytest.raises(SettingsError, match=r"train.lora.rank=-1: must be a whole number >= 0"):
        train(compose_config(overrides(tmp_path / "bad", str(tiny_hf), "train.lora.rank=-1")), tmp_path / "run2")
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_a_hub_id_downloads_through_huggingface_hub_from_the_loopback_hub(tiny_hf: Path, tmp_path: Path,
                                                                          monkeypatch) -> None:
    from hub_server import HubServer
    from huggingface_hub import HfApi

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with HubServer(token="hf_test") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", "hf_test")
        api = HfApi(endpoint=hub.url, token="hf_test")
        api.create_repo("tester/tiny-chat", repo_type="model")
        api.upload_folder(folder_path=str(tiny_hf), repo_id="tester/tiny-chat", repo_type="model")
        model, tok, meta = start_from_pretrained("hf:tester/tiny-chat@main")
        assert any(r.path.startswith("/tester/tiny-chat/resolve/") for r in hub.requests)
    local, _, _ = start_from_pretrained(f"hf:{tiny_hf}")
    assert "models--tester--tiny-chat" in meta["pretrained"]["path"] and tok.chat.name == "chatml"
    idx = torch.tensor([render_conversation(tok, TALK)[0]])
    with torch.no_grad():
        assert torch.equal(model(idx), local(idx))
    with HubServer(token="hf_test") as hub, pytest.raises(PretrainedStartError, match="hf:tester/none: .*not found"):
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        start_from_pretrained("hf:tester/none")
