"""Fault injection on the data/folder side: concurrent writers and kill -9 (real processes), colliding identity
names, secrets through generate/train/upload, unreadable lines, oversized and undecodable identities, huge
plans, I/O errors and the temp files of killed runs. Each test asserts on counts, files and messages.

Tallies (inputs tried, faults injected) are listed in docs/development.md; every test that can leak
looks for the secret's value in every byte under its folder afterwards (`assert_no_secret`).
"""

from __future__ import annotations

import io
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import huggingface_hub.constants
import pytest
from fault_checks import one_line
from hub_fixtures import write_data_folder
from hub_server import HubServer
from omegaconf import OmegaConf
from rich.console import Console

from lanbot.core.config import CONF_DIR, compose_config
from lanbot.core.conversation import dedup_key, validate
from lanbot.core.files import FileIOError, io_error, write_text_atomic
from lanbot.core.identity import IdentityError, identity_slug, to_identity
from lanbot.core.layout import (
    COMBINED_FILE,
    OWNER_FILE,
    STATS_FILE,
    CheckpointMeta,
    checkpoint_dir,
    conversations_file,
    lock_file,
    meta_file,
)
from lanbot.core.lock import FolderBusy, FolderLock
from lanbot.core.secrets import SecretLeakError
from lanbot.generation.datafolder import DataFolder, DataFolderError
from lanbot.generation.generate_data import GenerationError, check_plan_size, generate, plan_targets
from lanbot.sharing.hub_upload import upload
from lanbot.training.checkpoint import CheckpointMismatch, remove_stale_saves

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
ENV.pop("HYDRA_FULL_ERROR", None)
KEY = "sk-faults-0123456789abcdefSECRET"
HOLD = """import sys
from pathlib import Path
from lanbot.generation.datafolder import DataFolder
from lanbot.core.lock import FolderLock
target = Path(sys.argv[2])
with DataFolder(target, ["identity"], identity="Sage") if sys.argv[1] == "data" else FolderLock(target):
    (target if target.is_dir() else target.parent).joinpath(".stats.json.running.tmp").write_text("a writer's temp")
    print("ready", flush=True)
    sys.stdin.read()
"""


def hold(kind: str, folder: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """A real second process holding `folder` (a DataFolder, or a bare lock) until its stdin closes or it dies."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, kind, str(folder), *extra], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or ENV, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def cli(app: str, *args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"lanbot.{app}", *args], capture_output=True, text=True,
                          env=env or ENV, timeout=timeout, cwd=REPO)


def run_generate(root: Path, *overrides: str, identity: str = "identity=sage") -> dict:
    cfg = compose_config([identity, f"paths.root={root}", "logger=none", *overrides])
    return generate(cfg, root / "run", console=Console(file=io.StringIO()))


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


def assert_folder_sound(folder: Path, kinds: dict[str, int]) -> None:
    """Every type file holds exactly its target, every line a valid conversation, no duplicate, the sidecar
    aligned line for line, stats.json's counts those on disk and the combined file their sum."""
    keys: Counter[bytes] = Counter()
    for kind, target in kinds.items():
        data, side = lines(folder / conversations_file(kind)), lines(folder / meta_file(kind))
        assert len(data) == target and len(side) == target, (kind, len(data), len(side))
        for line in data:
            conv = json.loads(line)
            assert not validate(conv)
            keys[dedup_key(conv)] += 1
        assert all(isinstance(json.loads(s), dict) for s in side)
    assert not [k for k, n in keys.items() if n > 1], "duplicates"
    stats = json.loads((folder / STATS_FILE).read_text())
    assert stats["counts"] == {k: len(lines(folder / conversations_file(k))) for k in stats["counts"]}
    assert len(lines(folder / COMBINED_FILE)) == stats["total"]


def assert_no_secret(root: Path, secret: str = KEY) -> None:
    """The secret's value is in no byte of any file under `root`."""
    needle = secret.encode()
    hits = [p for p in root.rglob("*") if p.is_file() and "conf" not in p.relative_to(root).parts
            and needle in p.read_bytes()]  # the test's own identity files (conf/) hold it on purpose
    assert not hits, hits


# ---- 1. one writer per folder -------------------------------------------------------------------------------

def test_a_second_generate_stops_at_once_naming_the_running_one(tmp_path):
    root = tmp_path / "out"
    folder = root / "data" / "sage"
    holder = hold("data", folder)
    try:
        started = time.perf_counter()
        proc = cli("generate", "identity=sage", f"paths.root={root}", "logger=none", "data=identity", "data.count=5")
        line = one_line(proc, "generate")
        assert f"{folder} is being written by another lanbot run: pid {holder.pid}" in line
        assert "-c" in line and "kill " + str(holder.pid) in line and "paths.root=" in line
        assert time.perf_counter() - started < 60
        assert not lines(folder / conversations_file("identity"))  # nothing was written by the refused run
        assert (folder / ".stats.json.running.tmp").exists()        # nor a running writer's temp removed
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert not lock_file(folder).exists()  # released on exit
    run_generate(root, "data=identity", "data.count=5")
    assert_folder_sound(folder, {"identity": 5})


@pytest.mark.slow
def test_two_generates_at_once_never_write_more_than_the_target(tmp_path):
    """The bug: two runs on one folder wrote 4,000 conversations for 2,000. Now one waits its turn or stops."""
    root = tmp_path / "out"
    args = ["identity=sage", f"paths.root={root}", "logger=none", "data.count=150"]
    procs = [subprocess.Popen([sys.executable, "-m", "lanbot.generate", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO) for _ in range(2)]
    results = [(p.wait(240), p.stderr.read()) for p in procs]
    for code, err in results:
        assert code in (0, 2) and "Traceback" not in err, err
        if code == 2:
            assert "is being written by another lanbot run" in err
    assert 0 in [code for code, _ in results]
    targets = plan_targets(compose_config(args).data)
    assert_folder_sound(root / "data" / "sage", targets)


def test_a_stale_data_lock_of_a_killed_writer_is_taken_over(tmp_path, capsys):
    root = tmp_path / "out"
    folder = root / "data" / "sage"
    holder = hold("data", folder)
    kill9(holder)
    record = json.loads(lock_file(folder).read_text())
    assert record["pid"] == holder.pid and record["host"] and record["started"] and "-c" in record["command"]
    run_generate(root, "data=identity", "data.count=5")
    assert f"took over the stale lock of {folder}: pid {holder.pid}" in capsys.readouterr().err
    assert not (folder / ".stats.json.running.tmp").exists()  # the dead writer's temp, removed
    assert not lock_file(folder).exists()
    assert_folder_sound(folder, {"identity": 5})


def test_a_checkpoint_folder_has_one_writer_and_a_killed_ones_lock_is_free(tmp_path):
    root = tmp_path / "out"
    cfg = compose_config(["identity=sage", f"paths.root={root}", "stage=mid"])
    out = checkpoint_dir(cfg, "mid")
    holder = hold("lock", out)
    try:
        proc = cli("train", "identity=sage", f"paths.root={root}", "logger=none", "stage=mid",
                   "train.init_from=scratch")
        line = one_line(proc, "train")
        assert f"{out} is being written by another lanbot run: pid {holder.pid}" in line
        assert not out.exists()
    finally:
        kill9(holder)
    with FolderLock(out, "checkpoint folder") as lock:  # the kernel freed the flock: taken over, named
        assert lock.stale is not None and lock.stale["pid"] == holder.pid
        with pytest.raises(FolderBusy, match=f"pid {os.getpid()}"):  # even from this process, a second open
            FolderLock(out).acquire()
    assert not lock_file(out).exists()


def test_the_lock_is_released_on_errors_and_ctrl_c(tmp_path):
    folder = tmp_path / "d"
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), FolderLock(folder):
            raise exc
        assert not lock_file(folder).exists()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, "data", str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)  # Ctrl-C in the holder: KeyboardInterrupt unwinds, the lock goes with it
    proc.wait(10)
    assert proc.returncode != 0 and not lock_file(folder).exists()
    with FolderLock(folder) as lock:
        assert lock.stale is None


# ---- 2. folders that belong to one identity -----------------------------------------------------------------

NAMES = ["🤖", "🦾", "", "...", "Zoë", "Zo", "zo!", "Sage", "lanbot", "My Bot", "x" * 64, "x" * 63 + "é"]


def test_every_name_gets_a_folder_of_its_own_and_plain_names_keep_theirs(tmp_path):
    dirs = {name: compose_config([f"paths.root={tmp_path}", f"identity.name='{name}'"]).paths.data_dir
            for name in NAMES}
    assert len(set(dirs.values())) == len(NAMES), dirs
    assert identity_slug("Sage") == "sage" and identity_slug("LanBot") == "lanbot" and identity_slug("My Bot") == "my-bot"
    assert dirs["Sage"] == f"{tmp_path}/data/sage" and dirs["Zo"] == f"{tmp_path}/data/zo"
    assert dirs["Zoë"].startswith(f"{tmp_path}/data/zo-") and dirs["🤖"].startswith(f"{tmp_path}/data/unnamed-")
    assert all(len(Path(d).name) <= 57 for d in dirs.values())
    ckpts = {checkpoint_dir(compose_config([f"identity.name='{n}'", "stage=sft"])) for n in NAMES}
    assert len(ckpts) == len(NAMES)


def test_the_missing_checkpoint_hint_names_the_identity_file_not_the_folder(tmp_path):
    # conf/identity/zoe.yaml says `name: Zoë`: its folder is zo-<digest>, but identity= takes the file's name
    (tmp_path / "conf" / "identity").mkdir(parents=True)
    text = (REPO / "conf" / "identity" / "sage.yaml").read_text(encoding="utf-8")
    (tmp_path / "conf" / "identity" / "zoe.yaml").write_text(
        re.sub(r"(?m)^name: .*$", "name: Zoë", text), encoding="utf-8")
    line = one_line(cli("evaluate", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "identity=zoe",
                        f"paths.root={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'run'}"), "evaluate")
    assert "no sft checkpoint for identity 'Zoë' under " in line and "/checkpoints/zo-" in line, line
    # the command names the identity file (zoe), and carries the user's own paths and search path (issue 24)
    assert ("train one with `python -m lanbot.train stage=sft identity=zoe mix=default model=tiny "
            f"paths.root={tmp_path / 'out'} 'hydra.searchpath=[file://{tmp_path / 'conf'}]'`") in line, line


def test_another_identitys_data_folder_or_checkpoint_is_refused_with_both_names(tmp_path):
    root = tmp_path / "out"
    run_generate(root, "data=identity", "data.count=3", "identity.name=Zo")
    folder = root / "data" / "zo"
    assert json.loads((folder / OWNER_FILE).read_text()) == {"name": "Zo"}
    before = (folder / conversations_file("identity")).read_bytes()
    for overrides in (["identity.name=ZO"], ["identity.name=ZO", "data.overwrite=true"],
                      [f"paths.data_dir={folder}"]):  # the same slug, and a folder given by hand (Sage's run)
        with pytest.raises(DataFolderError, match=r"holds the data of identity 'Zo', not of '(ZO|Sage)'"):
            run_generate(root, "data=identity", "data.count=3", *overrides)
    assert (folder / conversations_file("identity")).read_bytes() == before  # nothing lost
    # a checkpoint: meta.json records its identity's name; training another identity into it is refused
    from lanbot.training.run import train

    cfg = compose_config(["identity.name=Zo", f"paths.root={root}", "stage=mid", "logger=none"])
    out = checkpoint_dir(cfg, "mid")
    out.mkdir(parents=True)
    CheckpointMeta(stage="mid", step=3, identity="Zo", identity_slug="zo").write(out)
    other = compose_config(["identity.name=ZO", f"paths.root={root}", "stage=mid", "logger=none"])
    with pytest.raises(CheckpointMismatch, match=r"belongs to identity 'Zo', not to 'ZO'"):
        train(other, tmp_path / "run")
    # and the data folder is checked by train too (Sage's run pointed at Zo's data)
    sage = compose_config(["identity=sage", f"paths.root={root}", "stage=mid", "logger=none",
                           f"paths.data_dir={folder}"])
    with pytest.raises(DataFolderError, match=r"holds the data of identity 'Zo', not of 'Sage'"):
        train(sage, tmp_path / "run")
    # evaluate and chat: the meta's name decides
    from lanbot.evaluation.inference import check_meta

    with pytest.raises(CheckpointMismatch, match=r"'Zo'.*'ZO'"):
        check_meta(other, out, CheckpointMeta.read(out))
    check_meta(cfg, out, CheckpointMeta.read(out))


# ---- 3. secrets never reach an output -----------------------------------------------------------------------

@pytest.fixture
def leaky_conf(tmp_path):
    """A config dir with identity `leaky` (creator: ${oc.env:OPENAI_API_KEY}) and `literal` (the key itself)."""
    conf = tmp_path / "conf"
    (conf / "identity").mkdir(parents=True)
    sage = (CONF_DIR / "identity" / "sage.yaml").read_text()
    (conf / "identity" / "leaky.yaml").write_text(sage.replace("creator: Your Company", "creator: ${oc.env:OPENAI_API_KEY}"))
    (conf / "identity" / "indirect.yaml").write_text(sage.replace("creator: Your Company", "creator: ${logger.project}"))
    (conf / "identity" / "literal.yaml").write_text(sage.replace("creator: Your Company", f"creator: {KEY}"))
    return conf


def test_an_identity_that_reads_the_environment_stops_generate_train_and_upload(tmp_path, leaky_conf):
    root = tmp_path / "out"
    env = {**ENV, "OPENAI_API_KEY": KEY, "HF_TOKEN": "hf_FaultsToken0123456789", "HF_HOME": str(tmp_path / "hf")}
    with HubServer(token="hf_FaultsToken0123456789") as hub:
        env["HF_ENDPOINT"] = hub.url
        common = ("--config-dir", str(leaky_conf), f"paths.root={root}", "logger=wandb")
        runs = {
            "generate": cli("generate", *common, "identity=leaky", "data=identity", "data.count=3", env=env),
            "train": cli("train", *common, "identity=leaky", "stage=mid", "train.init_from=scratch", env=env),
            "upload": cli("upload", *common, "identity=leaky", "upload.repo_id=tester/leak", env=env),
            "indirect": cli("generate", *common, "identity=indirect", "logger.project=${oc.env:OPENAI_API_KEY}",
                            "data=identity", "data.count=3", env=env),
        }
        assert not hub.requests
    for app, proc in runs.items():
        line = one_line(proc, "generate" if app == "indirect" else app)
        ident = "indirect" if app == "indirect" else "leaky"
        assert f"{leaky_conf / 'identity' / (ident + '.yaml')}: identity.creator:" in line
        assert "oc.env" in line and "write the value itself" in line and KEY not in proc.stdout + proc.stderr
    assert not (root / "data").exists() and not (root / "checkpoints").exists()
    assert_no_secret(tmp_path)


def test_the_scan_stops_a_secret_value_before_it_is_written_or_uploaded(tmp_path, leaky_conf, monkeypatch):
    """The key typed into the identity itself: the run config, the data, the checkpoint's config, meta.json,
    wandb and the Hub card refuse it, one line naming the variable, never the value."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    root = tmp_path / "out"
    proc = cli("generate", "--config-dir", str(leaky_conf), "identity=literal", f"paths.root={root}", "logger=none",
               "data=identity", "data.count=3", env={**ENV, "OPENAI_API_KEY": KEY})
    line = one_line(proc, "generate")
    assert "the config holds the value of $OPENAI_API_KEY" in line and ".hydra/config.yaml" in line
    assert KEY not in proc.stderr + proc.stdout and not (root / "data").exists()
    assert_no_secret(root)  # Hydra's saved copy is masked
    with pytest.raises(SecretLeakError, match=r"refusing to write .*identity_(conversations|meta).jsonl: it would "
                                              r"hold the value of \$OPENAI_API_KEY"):
        run_generate(root, "data=identity", "data.count=40", f"identity.creator={KEY}")
    # the checkpoint's config.yaml: refused before its temp folder exists
    import torch

    from lanbot.training.checkpoint import save_checkpoint
    from lanbot.training.model import GPT, GPTConfig
    from lanbot.training.tokenizer import Tokenizer

    cfg = compose_config(["identity=sage", f"identity.creator={KEY}", f"paths.root={root}"])
    tok = Tokenizer.train(["hello world"] * 20, 300)
    model = GPT(GPTConfig(sequence_len=16, vocab_size=tok.vocab_size, n_layer=1, n_head=1, n_kv_head=1, n_embd=16))
    out = checkpoint_dir(cfg, "mid")
    with pytest.raises(SecretLeakError, match=r"config.yaml: it would hold the value of \$OPENAI_API_KEY"):
        save_checkpoint(out, model, torch.optim.SGD(model.parameters(), lr=0.1), tok, cfg, {"stage": "mid"})
    assert not out.parent.exists() or not list(out.parent.iterdir())
    # wandb's config
    from lanbot.core.tracking import Tracker

    with pytest.raises(SecretLeakError, match="wandb run's config"):
        Tracker(compose_config(["identity=sage", f"identity.creator={KEY}", "logger=wandb"]), tmp_path / "run", "x")
    # meta.json, stats.json and every atomic write
    with pytest.raises(SecretLeakError, match="meta.json"):
        CheckpointMeta(stage="mid", identity=f"made by {KEY}").write(tmp_path / "ck")
    assert not (tmp_path / "ck" / "meta.json").exists()
    # the Hub: the dataset card would name the creator
    monkeypatch.setenv("HF_TOKEN", "hf_FaultsToken0123456789")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    data = write_data_folder(root / "data" / "sage")
    with HubServer(token="hf_FaultsToken0123456789") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with pytest.raises(SecretLeakError, match=r"refusing to upload README.md .* to tester/sage-data"):
            upload(compose_config(["identity=sage", f"identity.creator={KEY}", f"paths.root={root}", "logger=none",
                                   "upload.repo_id=tester/sage-data"]), tmp_path / "run")
        assert hub.repo("dataset", "tester/sage-data") is None and not hub.requests
        # a data file that holds the key (written by hand) is not uploaded either
        for name in (conversations_file("identity"), COMBINED_FILE):
            with open(data / name, "a") as f:
                f.write(json.dumps([{"role": "user", "content": "k?"}, {"role": "assistant", "content": KEY}]) + "\n")
        with pytest.raises(SecretLeakError, match=r"data/identity-00000-of-00001.parquet"):
            upload(compose_config(["identity=sage", f"paths.root={root}", "logger=none",
                                   "upload.repo_id=tester/sage-data", "upload.dry_run=true"]), tmp_path / "run")
        assert not hub.requests
    (data / conversations_file("identity")).unlink()
    (data / COMBINED_FILE).unlink()
    assert_no_secret(root)
    assert_no_secret(tmp_path / "run")


def test_the_lock_record_never_holds_a_secret(tmp_path):
    folder = tmp_path / "d"
    holder = hold("lock", folder, KEY, env={**ENV, "OPENAI_API_KEY": KEY})  # a secret on its command line
    try:
        record = lock_file(folder).read_text()
    finally:
        kill9(holder)
    assert KEY not in record and "***" in record


# ---- 5. unreadable lines ------------------------------------------------------------------------------------

BAD_LINES = {"not json": b"NOT JSON", "list of int": b"[1]", "number": b"5", "null": b"null", "empty list": b"[]",
             "object": b'{"role": "user"}', "string": b'"text"', "torn": b'[{"role": "user", "content": "hi',
             "not utf-8": b"\xff\xfe\xfa", "one message": b'[{"role": "user", "content": "hi"}]'}


@pytest.mark.parametrize("bad", list(BAD_LINES), ids=list(BAD_LINES))
def test_an_unreadable_data_or_sidecar_line_is_cut_counted_and_stats_rebuilt(tmp_path, bad):
    root = tmp_path / "out"
    run_generate(root, "data=identity", "data.count=6")
    folder = root / "data" / "sage"
    data, side = folder / conversations_file("identity"), folder / meta_file("identity")
    good = lines(data)
    data.write_bytes(b"\n".join([*good[:2], BAD_LINES[bad], *good[2:]]) + b"\n")     # a bad line in the middle
    metas = lines(side)
    side.write_bytes(b"\n".join([*metas[:2], b"{}", *metas[2:4], BAD_LINES[bad], *metas[5:]]) + b"\n")
    (folder / STATS_FILE).write_text('{"counts": {"identity": 999}}')                     # stale stats
    stats = run_generate(root, "data=identity", "data.count=8")
    meta_bad = bad != "object"  # a JSON object is a readable sidecar line
    assert stats["repaired"] == {"identity": {"lines_cut": 1, "sidecar_replaced": int(meta_bad)}}
    assert lines(data)[:6] == good                                                         # nothing good lost
    assert_folder_sound(folder, {"identity": 8})
    assert (json.loads(lines(side)[4]) == {"recovered": True}) == meta_bad


def test_a_torn_last_line_and_unreadable_sidecar_of_every_kind_in_one_folder(tmp_path):
    root = tmp_path / "out"
    run_generate(root, "data=identity", "data.count=12")
    folder = root / "data" / "sage"
    side = folder / meta_file("identity")
    metas = lines(side)
    side.write_bytes(b"\n".join([b"NOT JSON", b"[1]", b"5", *metas[3:]]) + b"\n")
    data = folder / conversations_file("identity")
    data.write_bytes(data.read_bytes() + b'[{"role": "user", "cont')                     # torn by a kill
    stats = run_generate(root, "data=identity", "data.count=12")
    assert stats["repaired"] == {"identity": {"lines_cut": 1, "sidecar_replaced": 3}}
    assert_folder_sound(folder, {"identity": 12})


# ---- 6. bounded input ---------------------------------------------------------------------------------------

def _identity_file(conf: Path, name: str, text: str | bytes) -> None:
    path = conf / "identity" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def test_oversized_and_undecodable_identity_files_are_one_line(tmp_path):
    conf = tmp_path / "conf"
    sage = (CONF_DIR / "identity" / "sage.yaml").read_text()
    _identity_file(conf, "huge", sage.replace("description: a patient", "description: " + "x" * 1_000_000 + " a"))
    _identity_file(conf, "latin1", sage.replace("name: Sage", "name: Zoë").encode("latin-1"))
    _identity_file(conf, "long", sage.replace("description: a patient", "description: " + "y" * 3000 + " a"))
    cases = {"huge": "bytes, more than the 65,536 an identity file may hold",
             "latin1": "line 6: not UTF-8 (byte 0xeb", "long": "identity.description has 3,0"}
    for name, needle in cases.items():
        proc = cli("generate", "--config-dir", str(conf), f"identity={name}", f"paths.root={tmp_path}/out",
                   "logger=none", "data.count=1")
        line = one_line(proc, "generate")
        assert str(conf / "identity" / f"{name}.yaml") in line and needle in line, line
    assert not (tmp_path / "out" / "data").exists()


FIELD_CASES = {"name": ("name", "n" * 65), "creator": ("creator", "c" * 201),
               "personality": ("personality", "p" * 1001), "quirks": ("quirks", [f"q{i}" for i in range(51)]),
               "capability": ("capabilities", ["c" * 501])}


@pytest.mark.parametrize("case", list(FIELD_CASES), ids=list(FIELD_CASES))
def test_identity_fields_have_size_limits(case):
    key, value = FIELD_CASES[case]
    node = compose_config(["identity=sage", "identity.quirk_hints=[]"]).identity
    OmegaConf.update(node, key, value, merge=False)
    with pytest.raises(IdentityError, match=rf"identity\.{key}(\[0\])? has .* more than the .* allowed"):
        to_identity(node)


def test_a_plan_far_past_what_fits_says_what_it_takes_and_needs_an_override(tmp_path):
    root = tmp_path / "out"
    with pytest.raises(GenerationError) as info:
        run_generate(root, "data.count=1000000000")
    message = str(info.value)
    for needle in ("data.count=1000000000 plans 6,000,000,000 conversations", "TB on disk", "days with backend template",
                   "free under", "data.allow_large=true"):
        assert needle in message, message
    assert not (root / "data").exists()
    cfg = compose_config(["identity=sage", f"paths.root={root}", "data.count=1000000000", "data.allow_large=true"])
    estimate = check_plan_size(cfg.data, cfg.backend, plan_targets(cfg.data), Path(cfg.paths.data_dir))
    assert estimate["to_write"] == 6_000_000_000 and estimate["bytes"] > estimate["free"]
    llm = compose_config(["identity=sage", "backend=openrouter", "data.count=100000"])
    with pytest.raises(GenerationError, match=r"days with backend openrouter, at least 600,000 requests to"):
        check_plan_size(llm.data, llm.backend, plan_targets(llm.data), tmp_path)


# ---- 7. disk and I/O errors, temp files of killed runs ------------------------------------------------------

def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, write() fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_write_past_the_file_size_limit_names_the_file_and_keeps_what_was_written(tmp_path):
    root = tmp_path / "out"
    args = ["identity=sage", f"paths.root={root}", "logger=none", "data=identity", "data.count=300"]
    proc = subprocess.run([sys.executable, "-m", "lanbot.generate", *args], capture_output=True, text=True, env=ENV,
                          cwd=REPO, timeout=180, preexec_fn=_limit_file_size(60_000))
    line = one_line(proc, "generate")
    folder = root / "data" / "sage"
    assert f"appending to {folder / conversations_file('identity')}: File too large" in line, line
    kept = lines(folder / conversations_file("identity"))
    assert 0 < len(kept) < 300
    run_generate(root, "data=identity", "data.count=300")  # the same command, no limit: completes, nothing lost
    assert lines(folder / conversations_file("identity"))[: len(kept) - 1] == kept[:-1]
    assert_folder_sound(folder, {"identity": 300})


def test_io_errors_name_the_operation_and_the_file(tmp_path):
    import errno

    error = io_error("writing", "outputs/data/sage/stats.json", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert str(error).startswith("writing outputs/data/sage/stats.json: No space left on device; free some space")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FileIOError, match=rf"creating {blocker}: (File exists|Not a directory)"):
        write_text_atomic(blocker / "stats.json", "{}")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(FileIOError, match=rf"writing {tmp_path / 'dir.json'}: Is a directory"):
        write_text_atomic(tmp_path / "dir.json", "{}")
    assert not list(tmp_path.glob(".dir.json.*.tmp"))


def test_temp_files_of_killed_runs_are_cleaned_by_the_next_writer_only(tmp_path):
    folder = tmp_path / "data" / "sage"
    folder.mkdir(parents=True)
    temps = [folder / ".stats.json.k1l2.tmp", folder / ".all_conversations.jsonl.ab12.tmp",
             folder / ".identity.json.zz.tmp", folder / ".write-test-4242"]
    (folder / "notes.txt").write_text("the user's own file")
    holder = hold("data", folder)
    for t in temps:  # left by killed runs before: as far as a refused writer knows, they may be the holder's
        t.write_bytes(b"x" * 1000)
    try:  # a writer holds the folder: its temps (and the leftovers) stay while it runs
        with pytest.raises(FolderBusy):
            DataFolder(folder, ["identity"], identity="Sage")
        assert all(t.exists() for t in temps)
    finally:
        kill9(holder)
    with DataFolder(folder, ["identity"], identity="Sage") as data:
        assert sorted(data.removed_temps) == sorted([*temps, folder / ".stats.json.running.tmp"])
    assert not any(t.exists() for t in temps) and (folder / "notes.txt").exists()
    # a checkpoint's leftovers: the temp and old folders of killed saves; an old one alone is put back
    ck = tmp_path / "ck" / "sage" / "default" / "tiny"
    (ck / "mid").mkdir(parents=True)
    (ck / "mid" / "meta.json").write_text("{}")
    for name in (".mid.tmp-999991", ".mid.old-999992", ".sft.old-999993"):
        (ck / name).mkdir()
        (ck / name / "model.pt").write_bytes(b"w" * 1000)
    with FolderLock(ck / "mid"):
        removed = remove_stale_saves(ck / "mid")
    assert sorted(p.name for p in removed) == [".mid.old-999992", ".mid.tmp-999991"]
    with FolderLock(ck / "sft"):
        assert remove_stale_saves(ck / "sft") == []
    assert (ck / "sft" / "model.pt").exists() and (ck / "mid" / "meta.json").exists()


@pytest.mark.slow
def test_kill_9_during_generation_then_rerun_takes_the_lock_over_and_completes(tmp_path):
    root = tmp_path / "out"
    folder = root / "data" / "sage"
    args = ["identity=sage", f"paths.root={root}", "logger=none", "data.count=3000"]
    proc = subprocess.Popen([sys.executable, "-m", "lanbot.generate", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=ENV, cwd=REPO)
    data = folder / conversations_file("identity")
    deadline = time.time() + 120
    while time.time() < deadline and (not data.exists() or data.stat().st_size < 20_000):
        time.sleep(0.05)
    kill9(proc)
    assert lock_file(folder).exists()  # left behind by the killed run
    (folder / ".all_conversations.jsonl.dead.tmp").write_bytes(b"y" * 100_000)
    rerun = subprocess.run([sys.executable, "-m", "lanbot.generate", *args], capture_output=True, text=True,
                           env=ENV, cwd=REPO, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"took over the stale lock of {folder}: pid {proc.pid}" in rerun.stderr
    assert not (folder / ".all_conversations.jsonl.dead.tmp").exists() and not lock_file(folder).exists()
    assert_folder_sound(folder, plan_targets(compose_config(args).data))
