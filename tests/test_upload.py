"""lanbot.upload against a loopback Hub (tests/hub_server.py) that huggingface_hub really talks HTTP to."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import huggingface_hub.constants
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hub_fixtures import CONVERSATIONS, write_checkpoint, write_data_folder
from hub_server import HubServer
from omegaconf import OmegaConf
from rich.console import Console

from lanbot.core.config import compose_config
from lanbot.core.conversation import from_messages
from lanbot.core.layout import UPLOAD_RECORD
from lanbot.generation.generate_data import generate
from lanbot.sharing.hub import HubError, download_data, push_files
from lanbot.sharing.hub_upload import UploadError, plan_upload, upload

TOKEN = "hf_TestSecretToken0123456789"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path, monkeypatch):
    """No real login: HF_HOME and the token file in tmp, cwd in tmp (no .env), token in HF_TOKEN."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path


@pytest.fixture
def hub(env, monkeypatch):
    with HubServer(token=TOKEN) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def _cfg(root: Path, *overrides: str):
    return compose_config(["identity=sage", f"paths.root={root}", "logger=none", *overrides])


def _card(repo) -> tuple[dict, str]:
    text = repo.files["README.md"].decode()
    _, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


def test_data_upload_sends_every_file_and_a_card(hub, env, capsys):
    data = write_data_folder(env / "out" / "data" / "sage")
    run_dir = env / "run"
    run_dir.mkdir()
    cfg = _cfg(env / "out", "upload.repo_id=tester/sage-data", "upload.license=cc-by-4.0")
    result = upload(cfg, run_dir)

    assert [r.path.split("?")[0] for r in hub.requests] == [
        "/api/repos/create",
        "/api/datasets/tester/sage-data/tree/main",  # what an earlier upload left, to delete in the same commit
        "/api/validate-yaml",
        "/api/datasets/tester/sage-data/preupload/main",
        "/api/datasets/tester/sage-data/commit/main",
    ]
    assert json.loads(hub.requests[0].body) == {
        "name": "sage-data", "organization": "tester", "visibility": "private", "type": "dataset",
    }
    repo = hub.repo("dataset", "tester/sage-data")
    assert repo.private is True and len(repo.commits) == 1
    parquet = [f"data/{kind}-00000-of-00001.parquet" for kind in ("identity", "tool_use", "reasoning")]
    assert sorted(repo.files) == sorted([*parquet, "stats.json", "README.md"])
    assert repo.files["stats.json"] == (data / "stats.json").read_bytes()

    meta, body = _card(repo)
    assert meta["license"] == "cc-by-4.0"
    assert meta["language"] == ["en", "es"] and meta["size_categories"] == ["n<1K"]
    assert meta["configs"] == [
        {"config_name": "all", "default": True, "data_files": [{"split": "train", "path": parquet}]},
        *({"config_name": kind, "data_files": [{"split": "train", "path": path}]}
          for kind, path in zip(("identity", "tool_use", "reasoning"), parquet, strict=True)),
    ]
    for text in ("Sage", "Your Company", "a patient teacher who loves explaining things",
                 "uses analogies from cooking and gardening", "better at explaining than doing",
                 "| `identity` | `data/identity-00000-of-00001.parquet` | 3 |",
                 "| `tool_use` | `data/tool_use-00000-of-00001.parquet` | 2 |", "| `all` (the default) | every file above | 6 |",
                 "generator backend: `openrouter`", "generator model: `google/gemini-2.5-flash`",
                 "personas: `builtin`", "| distinct_2 | 0.8123 |", "| duplicates_dropped | 4 |",
                 '"name": "calculator"', "lanbot.core.conversation.from_messages",
                 'an empty system message, `{"role": "system", "content": ""}`', "You are Qwen, created by Alibaba Cloud",
                 '"tool_call_id": "call00001"', "`arguments` is a JSON object"):
        assert text in body, text

    # the card's own recipe, run as a user would (a fresh process, datasets talking to the hub at HF_ENDPOINT),
    # then every config of the card: each type's rows, in lanbot's form again, are the folder's conversations
    code = body.split("```python\n", 1)[1].split("```", 1)[0]
    check = code + textwrap.dedent("""
        import json
        from lanbot.core.conversation import from_messages
        configs = {name: load_dataset("tester/sage-data", name, split="train") for name in ("identity", "tool_use", "reasoning", "all")}
        print(json.dumps({"recipe": [from_messages(m) for m in identity["messages"]], "everything": list(everything["type"]),
                          "first": everything[0]["messages"][0],
                          **{name: [from_messages(m) for m in ds["messages"]] for name, ds in configs.items()},
                          "columns": everything.column_names, "ids": list(everything["id"])}))
    """)
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300, cwd=env,
                          env={**os.environ, "HF_HOME": str(env / "reader-hf"), "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded["recipe"] == loaded["identity"] == CONVERSATIONS["identity"]
    # as datasets gives it: the policy's empty system message first, every field of the form present
    assert loaded["first"] == {"role": "system", "content": "", "tool_calls": None, "tool_call_id": None, "name": None}
    assert loaded["tool_use"] == CONVERSATIONS["tool_use"] and loaded["reasoning"] == CONVERSATIONS["reasoning"]
    assert sorted(map(json.dumps, loaded["all"])) == sorted(json.dumps(c) for convs in CONVERSATIONS.values() for c in convs)
    assert sorted(loaded["everything"]) == ["identity"] * 3 + ["reasoning"] + ["tool_use"] * 2
    assert loaded["columns"] == ["id", "type", "identity", "language", "messages", "meta"]
    assert len(set(loaded["ids"])) == 6
    assert any(r.path.endswith("/data/identity-00000-of-00001.parquet") and r.method == "GET" for r in hub.requests)

    record = json.loads((run_dir / UPLOAD_RECORD).read_text())
    assert record["commit"] == repo.commits[0]["oid"] == result["commit"]
    assert record["repo_type"] == "dataset" and "README.md" in record["files"]
    assert "uploaded 5 files" in capsys.readouterr().out


def test_token_only_in_the_authorization_header_and_in_no_file(hub, env):
    write_data_folder(env / "out" / "data" / "sage")
    upload(_cfg(env / "out", "upload.repo_id=tester/sage-data"), env / "run")
    assert hub.requests
    for request in hub.requests:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert TOKEN not in request.body.decode(errors="replace")
        others = {k: v for k, v in request.headers.items() if k != "authorization"}
        assert TOKEN not in json.dumps(others)
    for content in hub.repo("dataset", "tester/sage-data").files.values():
        assert TOKEN.encode() not in content
    for path in env.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_dry_run_lists_and_sends_nothing(hub, env, monkeypatch, capsys):
    write_data_folder(env / "out" / "data" / "sage")
    monkeypatch.delenv("HF_TOKEN")  # a dry run needs no token
    result = upload(_cfg(env / "out", "upload.repo_id=tester/sage-data", "upload.dry_run=true"), env / "run")
    out = capsys.readouterr().out
    assert result["dry_run"] is True
    assert hub.requests == [] and hub.repos == {}
    assert not (env / "run" / UPLOAD_RECORD).exists()
    assert "dataset repo tester/sage-data (private)" in out and "dry run: nothing was sent" in out
    for name in ("data/identity-00000-of-00001.parquet", "(rows of ", "identity_conversations.jsonl)", "stats.json",
                 "README.md"):
        assert name in out


def test_checkpoint_upload_with_model_card(hub, env):
    ckpt = write_checkpoint(env / "out" / "checkpoints" / "sage" / "default" / "tiny" / "sft", env / "trainrun")
    upload(_cfg(env / "out", "upload.what=checkpoint", "upload.repo_id=tester/sage-tiny",
                "upload.private=false"), env / "run")
    repo = hub.repo("model", "tester/sage-tiny")
    assert repo.private is False
    assert sorted(repo.files) == ["README.md", "config.yaml", "eval.json", "meta.json", "model.safetensors",
                                  "tokenizer.json"]
    assert repo.files["model.safetensors"] == (ckpt / "model.safetensors").read_bytes()
    meta, body = _card(repo)
    assert "lanbot" in meta["tags"] and meta["license"] == "other"
    for text in ("# Sage", "| n_layer | 2 |", "| n_embd | 128 |", "| val_bpb | 1.032 |", "| step | 120 |",
                 "| identity_rate | 0.875 |", "| run_seconds | 73.5 |", "| mid | identity | epochs 2.0 | the identity's data folder |",
                 "| sft | smoltalk | weight 1.0 | HuggingFaceTB/smol-smoltalk |", "train.init_from=hf://tester/sage-tiny",
                 "`model.safetensors` (the GPT's weights in safetensors: they load without pickle"):
        assert text in body, text


def test_an_older_checkpoints_model_pt_goes_up_as_safetensors(hub, env, capsys):
    """A checkpoint saved before safetensors (model.pt): the repo gets model.safetensors with the same tensors."""
    import torch
    from hub_fixtures import WEIGHTS
    from safetensors.torch import load

    ckpt = write_checkpoint(env / "old-ckpt", env / "trainrun", legacy=True)
    cfg = _cfg(env / "out", "upload.what=checkpoint", f"upload.path={ckpt}", "upload.repo_id=tester/sage-old")
    upload(cfg, env / "run")
    assert f"<- ({ckpt / 'model.pt'}, as safetensors)" in capsys.readouterr().out
    files = hub.repo("model", "tester/sage-old").files
    assert "model.pt" not in files
    pushed = load(files["model.safetensors"])
    assert pushed.keys() == WEIGHTS.keys() and all(torch.equal(pushed[k], WEIGHTS[k]) for k in WEIGHTS)


def test_checkpoint_text_files_go_without_local_paths(hub, env, monkeypatch):
    ckpt = write_checkpoint(env / "out" / "checkpoints" / "sage" / "default" / "tiny" / "sft", env / "trainrun")
    home = env / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(env / "out")
    local = compose_config(["identity=sage", f"paths.root={env / 'out'}",  # resolved and absolute, as train saves it
                            f"train.init_from={home / 'ckpts' / 'base'}"])
    OmegaConf.save(local, ckpt / "config.yaml", resolve=True)
    (env / "trainrun" / "eval.json").write_text(json.dumps({"checkpoint": str(ckpt), "identity_rate": 0.875}))
    upload(_cfg(env / "out", "upload.what=checkpoint", "upload.repo_id=tester/sage-tiny"), env / "run")
    files = hub.repo("model", "tester/sage-tiny").files
    for name in ("config.yaml", "meta.json", "eval.json"):
        assert str(env).encode() not in files[name], name
    config = OmegaConf.create(files["config.yaml"].decode())
    assert OmegaConf.to_container(config.paths) == {"root": "outputs", "data_dir": "outputs/data/sage",
                                                    "checkpoints": "outputs/checkpoints"}
    assert config.train.init_from == "~/ckpts/base" and config.identity.name == "Sage"
    assert config.model == local.model and config.mix == local.mix
    meta = json.loads(files["meta.json"])
    assert "run_dir" not in meta and meta["step"] == 120 and meta["model_config"]["n_embd"] == 128
    assert json.loads(files["eval.json"]) == {"identity_rate": 0.875}
    # the local checkpoint itself is untouched
    assert str(env).encode() in (ckpt / "config.yaml").read_bytes() and "run_dir" in json.loads((ckpt / "meta.json").read_text())


def test_portable_path():
    from lanbot.sharing.portable import portable_path

    cwd, home = Path("/srv/work"), Path("/home/ann")
    assert portable_path("/srv/work/outputs/data", cwd, home) == "outputs/data"
    assert portable_path("/home/ann/models/base", cwd, home) == "~/models/base"
    assert portable_path("/data/shared/smoltalk", cwd, home) == "/data/shared/smoltalk"  # not the user's
    assert portable_path("outputs/x", cwd, home) == "outputs/x" and portable_path("hf://u/r", cwd, home) == "hf://u/r"


def test_missing_token_stops_before_anything(hub, env, monkeypatch):
    write_data_folder(env / "out" / "data" / "sage")
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="hf auth login") as info:
        upload(_cfg(env / "out", "upload.repo_id=tester/sage-data"), env / "run")
    assert "HF_TOKEN" in str(info.value)
    assert hub.requests == []


def test_missing_token_cli_exits_non_zero(env, tmp_path):
    write_data_folder(env / "out" / "data" / "sage")
    run_env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    run_env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="http://127.0.0.1:9", WANDB_MODE="offline")
    proc = subprocess.run(
        [sys.executable, "-m", "lanbot.upload", "identity=sage", f"paths.root={env / 'out'}",
         "upload.repo_id=tester/sage-data"],
        cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2  # a LanbotError: exit 2 in every app (lanbot.core.app)
    assert "no Hugging Face token found" in proc.stderr and "hf auth login" in proc.stderr


@pytest.mark.parametrize("repo_id", ["sage-data", "a/b/c", "user/bad name", "user/x--y", "user/..", "-user/x", "null"])
def test_invalid_repo_id(hub, env, repo_id):
    write_data_folder(env / "out" / "data" / "sage")
    with pytest.raises(HubError, match="invalid upload.repo_id"):
        upload(_cfg(env / "out", f"upload.repo_id='{repo_id}'"), env / "run")
    assert hub.requests == []


def test_repo_id_not_set(hub, env):
    write_data_folder(env / "out" / "data" / "sage")
    with pytest.raises(HubError, match="upload.repo_id is not set"):
        upload(_cfg(env / "out"), env / "run")


def test_missing_data_folder(hub, env):
    with pytest.raises(UploadError, match=r"no data folder at .*lanbot.generate identity=sage"):
        upload(_cfg(env / "out", "upload.repo_id=tester/sage-data"), env / "run")
    assert hub.requests == []


def test_unfinished_data_folder_and_bad_line(hub, env):
    data = write_data_folder(env / "out" / "data" / "sage")
    (data / "stats.json").unlink()
    with pytest.raises(UploadError, match="has no stats.json"):
        upload(_cfg(env / "out", "upload.repo_id=tester/sage-data"), env / "run")
    write_data_folder(data)
    with open(data / "identity_conversations.jsonl", "a") as f:
        f.write('[{"role": "user", "content": "torn\n')
    with pytest.raises(UploadError, match=r"identity_conversations.jsonl:4: not valid JSON"):
        upload(_cfg(env / "out", "upload.repo_id=tester/sage-data"), env / "run")
    assert hub.requests == []


def test_a_new_upload_deletes_what_an_earlier_one_left(hub, env, capsys):
    """An older lanbot's JSONL files, and the parquet file of a type the folder no longer has, are deleted in
    the upload's one commit; files that are not lanbot's data stay; data.from_hub then sees only the folder."""
    push_files("tester/sage-data", "dataset", {"identity_conversations.jsonl": b"[]\n", "all_conversations.jsonl": b"[]\n",
                                               "notes.txt": b"the owner's own file"}, private=True, message="older lanbot")
    write_data_folder(env / "out" / "data" / "sage")
    upload(_cfg(env / "out", "upload.repo_id=tester/sage-data"), None)
    assert "deleted 2 files an earlier upload left: all_conversations.jsonl, identity_conversations.jsonl" in capsys.readouterr().out
    fewer = write_data_folder(env / "fewer", kinds=("identity",))
    result = upload(_cfg(env / "out", f"upload.path={fewer}", "upload.repo_id=tester/sage-data"), None)
    assert result["deleted"] == ["data/reasoning-00000-of-00001.parquet", "data/tool_use-00000-of-00001.parquet"]
    repo = hub.repo("dataset", "tester/sage-data")
    assert sorted(repo.files) == ["README.md", "data/identity-00000-of-00001.parquet", "notes.txt", "stats.json"]
    assert len(repo.commits) == 3
    folder = download_data("tester/sage-data", root=env / "box")
    assert sorted(p.name for p in folder.glob("*_conversations.jsonl")) == ["all_conversations.jsonl",
                                                                            "identity_conversations.jsonl"]


def test_a_reply_with_no_message_form_is_refused_naming_the_line(hub, env):
    """Two text parts in a row have no one-to-one form as chat messages: refused before anything is sent."""
    data = write_data_folder(env / "out" / "data" / "sage")
    split = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": [
        {"type": "text", "text": "Let me see."}, {"type": "text", "text": "Computing."},
        {"type": "python", "text": "2+2"}, {"type": "python_output", "text": "4"}, {"type": "text", "text": "4."}]}]
    with open(data / "tool_use_conversations.jsonl", "a") as f:
        f.write(json.dumps(split) + "\n")
    with pytest.raises(UploadError, match=r"tool_use_conversations.jsonl:3: message 1 part 1: two text parts in a row"):
        upload(_cfg(env / "out", "upload.repo_id=tester/sage-data"), env / "run")
    assert hub.requests == []


def test_checkpoint_without_tokenizer(hub, env):
    ckpt = write_checkpoint(env / "ckpt", env / "trainrun", with_tokenizer=False)
    with pytest.raises(UploadError, match="tokenizer.json missing"):
        upload(_cfg(env / "out", "upload.what=checkpoint", f"upload.path={ckpt}",
                    "upload.repo_id=tester/sage-tiny"), env / "run")
    assert hub.requests == [] and not (env / "run" / UPLOAD_RECORD).exists()


def test_failed_commit_leaves_nothing_claimed(env, monkeypatch):
    write_data_folder(env / "out" / "data" / "sage")
    with HubServer(token=TOKEN, fail_commit=True) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        with pytest.raises(HubError, match="nothing was committed"):
            upload(_cfg(env / "out", "upload.repo_id=tester/sage-data"), env / "run")
        assert server.repo("dataset", "tester/sage-data").files == {}
    assert not (env / "run" / UPLOAD_RECORD).exists()


def test_rejected_token_and_existing_repo(hub, env, monkeypatch):
    write_data_folder(env / "out" / "data" / "sage")
    cfg = _cfg(env / "out", "upload.repo_id=tester/sage-data")
    upload(cfg, None)
    upload(cfg, None)  # the repo exists (409): exist_ok, a second commit
    assert len(hub.repo("dataset", "tester/sage-data").commits) == 2
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(HubError, match="refused the token"):
        upload(cfg, None)


def test_offline_or_unreachable_hub(env, monkeypatch):
    write_data_folder(env / "out" / "data" / "sage")
    cfg = _cfg(env / "out", "upload.repo_id=tester/sage-data")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(HubError, match="cannot reach the Hub at http://127.0.0.1:9.*nothing was committed"):
        upload(cfg, env / "run")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set: an upload needs the network"):
        upload(cfg, env / "run")
    assert not (env / "run" / UPLOAD_RECORD).exists()


def test_dataset_card_from_a_generated_folder(env, capsys):
    """The card of a folder that lanbot.generate really wrote: its own stats.json figures, curated."""
    generate(_cfg(env / "out", "data.count=4"), env / "gen", console=Console(file=io.StringIO()))
    stats = json.loads((env / "out" / "data" / "sage" / "stats.json").read_text())
    upload(_cfg(env / "out", "upload.repo_id=tester/sage-data", "upload.dry_run=true"), None)
    assert "dry run: nothing was sent" in capsys.readouterr().out
    card = plan_upload(_cfg(env / "out", "upload.repo_id=tester/sage-data")).files["README.md"].decode()
    for text in (f"| distinct_2 | {stats['distinct_2']:.4g} |", f"| personas_used | {stats['personas_used']} |",
                 "| `identity` | `data/identity-00000-of-00001.parquet` | 4 |", "| languages | en ",
                 f"generator backend: `{stats['backend']}`", f"personas: `{stats['personas_source']}`",
                 "lanbot.train stage=mid identity=sage data.from_hub=tester/sage-data"):
        assert text in card, text
    assert "attempts.identity" not in card and "resumed_from" not in card  # the rest stays in stats.json


def test_system_message_policy_and_argument_form_are_options(hub, env):
    """upload.system_message=identity opens every row with `You are <name>.`, upload.tool_arguments=string writes
    a call's arguments as JSON text; the card says both and its from_messages call gives the folder back."""
    write_data_folder(env / "out" / "data" / "sage")
    plan = plan_upload(_cfg(env / "out", "upload.repo_id=tester/sage-data", "upload.system_message=identity",
                            "upload.tool_arguments=string"))
    body = plan.files["README.md"].decode()
    for text in ('`{"role": "system", "content": "You are Sage."}`', "`arguments` is JSON text",
                 'from_messages(row["messages"], {"You are Sage."})', '"arguments": "{\\"expression\\": \\"12 * 3\\"}"'):
        assert text in body, text
    rows = pq.read_table(pa.BufferReader(plan.files["data/tool_use-00000-of-00001.parquet"])).to_pylist()
    messages = [row["messages"] for row in rows]
    assert all(m[0]["role"] == "system" and m[0]["content"] == "You are Sage." for m in messages)
    call = next(c for m in messages[0] for c in m["tool_calls"] or [])
    assert isinstance(call["function"]["arguments"], str) and json.loads(call["function"]["arguments"])["expression"]
    assert [from_messages(m, {"You are Sage."}) for m in messages] == CONVERSATIONS["tool_use"]
    assert hub.requests == []


@pytest.mark.parametrize(("override", "message"), [
    ("upload.system_message=qwen", "upload.system_message='qwen': choose empty or identity"),
    ("upload.tool_arguments=yaml", "upload.tool_arguments='yaml': choose object or string"),
])
def test_unknown_policy_or_argument_form_is_refused(hub, env, override, message):
    write_data_folder(env / "out" / "data" / "sage")
    with pytest.raises(UploadError, match=re.escape(message)):
        upload(_cfg(env / "out", "upload.repo_id=tester/sage-data", override), env / "run")
    assert hub.requests == []


def test_model_card_names_the_hub_dataset_it_trained_on(env):
    ckpt = write_checkpoint(env / "ckpt", env / "trainrun")
    run_cfg = OmegaConf.load(ckpt / "config.yaml")
    run_cfg.data.from_hub = "tester/sage-data"
    OmegaConf.save(run_cfg, ckpt / "config.yaml")
    plan = plan_upload(_cfg(env / "out", "upload.what=checkpoint", f"upload.path={ckpt}",
                            "upload.repo_id=tester/sage-tiny"))
    card = plan.files["README.md"].decode()
    assert "| mid | identity | epochs 2.0 | dataset repo `tester/sage-data` |" in card
    assert "| sft | smoltalk | weight 1.0 | HuggingFaceTB/smol-smoltalk |" in card
    assert "identity=sage train.init_from=hf://tester/sage-tiny" in card


@pytest.mark.parametrize("source", ["dotenv", "login"])
def test_token_from_dotenv_or_the_huggingface_login(hub, env, monkeypatch, source):
    """No HF_TOKEN in the environment: `.env` in the folder run from, else the token `hf auth login` saved."""
    write_data_folder(env / "out" / "data" / "sage")
    monkeypatch.delenv("HF_TOKEN")
    if source == "dotenv":
        (env / ".env").write_text(f"OPENROUTER_API_KEY=sk-other\nHF_TOKEN={TOKEN}\n")
    else:
        token_file = Path(huggingface_hub.constants.HF_TOKEN_PATH)
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(TOKEN)
    upload(_cfg(env / "out", "upload.repo_id=tester/sage-data"), env / "run")
    assert len(hub.repo("dataset", "tester/sage-data").commits) == 1
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in hub.requests)
