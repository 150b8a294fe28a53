"""Fault injection, races with training and the file system (issue 20, points 5 and 7): real second processes
hold a folder's lock while train, evaluate and upload start; links and FIFOs are planted in the folders lanbot
writes; the disk fills during a checkpoint save; `.env` is a FIFO or not UTF-8. Each is asserted on the exit
code, its one line (naming the holder, the link or the file) and the bytes already on disk."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from engine_fixtures import save_random_checkpoint
from fault_checks import one_line, snapshot
from train_fixtures import make_data_folder

from lanbot.core import layout
from lanbot.core.config import compose_config
from lanbot.core.files import LinkRefused, open_no_follow, write_json_atomic
from lanbot.core.layout import lock_file
from lanbot.core.lock import FolderBusy, FolderLock, reading
from lanbot.core.secrets import DotenvError, api_key, known_secrets
from lanbot.sharing.hub_upload import upload
from lanbot.training import checkpoint as ckpt
from lanbot.training.run import train

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
ENV.pop("HYDRA_FULL_ERROR", None)
HOLD = """import sys
from lanbot.core.lock import FolderLock
with FolderLock(sys.argv[1], "folder", shared=sys.argv[2] == "shared"):
    print("ready", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder():
    """`hold(folder, mode)`: a real second process holding `folder`'s lock (shared or exclusive) until the test
    ends; returns its pid."""
    procs = []

    def hold(folder: Path, mode: str = "exclusive") -> int:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), mode], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        return proc.pid

    yield hold
    for proc in procs:
        proc.stdin.close()
        proc.wait(10)


def cli(app: str, root: Path, *args: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"lanbot.{app}", "identity=sage", f"paths.root={root}",
                           f"hydra.run.dir={root}/run-{app}", "logger=none", *args],
                          capture_output=True, text=True, env=ENV, timeout=timeout, cwd=cwd)


# ---- 5. one writer, and readers that see a whole folder --------------------------------------------------------

def test_readers_share_a_folder_a_writer_is_refused_naming_them_and_the_last_reader_removes_the_lock(tmp_path,
                                                                                                    holder):
    folder = tmp_path / "ck"
    folder.mkdir()
    reader = holder(folder, "shared")
    with FolderLock(folder, "checkpoint folder", shared=True):  # a second reader beside it
        with pytest.raises(FolderBusy) as busy:
            FolderLock(folder, "checkpoint folder").acquire()
        message = str(busy.value)
        assert f"checkpoint folder {folder} is being read by another lanbot run: pid {reader} on host" in message
        assert f"pid {os.getpid()}" in message and f"kill {reader} {os.getpid()}" in message
    assert lock_file(folder).exists()  # the other reader still holds it: the file stays
    records = [json.loads(line) for line in lock_file(folder).read_text().splitlines()]
    assert {r["pid"] for r in records} >= {reader} and all(r["mode"] == "shared" for r in records)


def test_a_reader_is_refused_by_a_writer_at_once_and_a_writer_may_read_its_own_folder(tmp_path, holder):
    folder = tmp_path / "data"
    folder.mkdir()
    writer = holder(folder)
    with pytest.raises(FolderBusy, match=f"data folder {folder} is being written by another lanbot run: pid {writer}"):
        FolderLock(folder, "data folder", shared=True).acquire()
    other = tmp_path / "mine"
    other.mkdir()
    with FolderLock(other, "checkpoint folder"), reading(other, "checkpoint folder") as nested:
        assert nested.held  # training evaluates the checkpoint it holds: no refusal from itself
    assert not lock_file(other).exists()
    with reading(tmp_path / "absent", "checkpoint folder"):  # no folder: no lock file made for it
        pass
    assert not lock_file(tmp_path / "absent").exists()


def test_evaluate_and_upload_refuse_a_checkpoint_a_retrain_is_writing(tmp_path, holder):
    root = tmp_path / "out"
    cfg = compose_config(["identity=sage", f"paths.root={root}", "upload.what=checkpoint",
                          "upload.repo_id=tester/sage-model", "upload.dry_run=true"])
    directory = save_random_checkpoint(cfg, "sft")
    before = snapshot(directory)
    writer = holder(directory)  # a retrain of this checkpoint holds it
    line = one_line(cli("evaluate", root, f"eval.checkpoint={directory}"), "evaluate")
    assert f"checkpoint folder {directory} is being written by another lanbot run: pid {writer} on host" in line
    with pytest.raises(FolderBusy, match=f"checkpoint folder {directory} is being written by another lanbot run: "
                                         f"pid {writer}"):
        upload(cfg, tmp_path / "run")  # before a file is planned: no commit mixes the old card and new weights
    assert snapshot(directory) == before and not (directory / layout.EVAL_FILE).exists()
    assert not (tmp_path / "run" / layout.UPLOAD_RECORD).exists()


MICRO = ["train.init_from=scratch", "train.overwrite=true", "model.n_layer=1", "model.n_embd=64", "model.n_head=2",
         "model.n_kv_head=2", "model.vocab_size=400", "logger=none"]


def test_train_refuses_a_checkpoint_being_evaluated_and_a_data_folder_being_generated(tmp_path, holder):
    root = tmp_path / "out"
    cfg = compose_config(["identity=sage", f"paths.root={root}", "stage=mid", *MICRO])
    mid = save_random_checkpoint(cfg, "mid")
    before = snapshot(mid)
    reader = holder(mid, "shared")  # an evaluation (or upload) of mid
    with pytest.raises(FolderBusy, match=f"checkpoint folder {mid} is being read by another lanbot run: pid {reader}"):
        train(cfg, tmp_path / "run")
    assert snapshot(mid) == before
    data = make_data_folder(Path(cfg.paths.data_dir), per_type=5, name="Sage")
    generator = holder(data)  # generate is rewriting the data folder
    sft = compose_config(["identity=sage", f"paths.root={root}", "stage=sft", *MICRO])
    with pytest.raises(FolderBusy, match=f"data folder {data} is being written by another lanbot run: pid {generator}"):
        train(sft, tmp_path / "run")
    assert not (layout.checkpoint_dir(sft, "sft") / layout.META_FILE).exists()


# ---- 7. the file system ---------------------------------------------------------------------------------------

def test_generate_never_writes_through_a_link_planted_in_the_data_folder(tmp_path):
    root = tmp_path / "out"
    other = tmp_path / "other-identity"
    other.mkdir()
    victim = other / "identity_conversations.jsonl"
    victim.write_bytes(b'[{"role": "user", "content": "theirs"}]\n')
    before = victim.read_bytes()
    folder = root / "data" / "sage"
    folder.mkdir(parents=True)
    link = folder / "identity_conversations.jsonl"
    link.symlink_to(victim)
    line = one_line(cli("generate", root, "backend=template", "data=identity", "data.count=3"), "generate")
    assert f"{link} is a symbolic link to {victim}" in line and f"rm {link}" in line
    assert victim.read_bytes() == before and link.is_symlink()


def test_no_writer_follows_a_link_or_opens_a_fifo_in_a_folder(tmp_path):
    victim = tmp_path / "victim.json"
    victim.write_text("theirs")
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "eval.json").symlink_to(victim)
    with pytest.raises(LinkRefused, match=f"{folder / 'eval.json'} is a symbolic link to {victim}"):
        write_json_atomic(folder / "eval.json", {"scores": {}})
    (folder / "x.jsonl").symlink_to(victim)
    for mode in ("a", "ab", "rb+"):
        with pytest.raises(LinkRefused, match="is a symbolic link"):
            open_no_follow(folder / "x.jsonl", mode)
    os.mkfifo(folder / "fifo.jsonl")
    for mode in ("a", "rb+"):  # a FIFO nobody reads: refused at once, never a hang
        with pytest.raises(LinkRefused, match="not a regular file"):
            open_no_follow(folder / "fifo.jsonl", mode)
    assert victim.read_text() == "theirs"
    (tmp_path / "target.lock").write_text("theirs")
    lock_file(folder).symlink_to(tmp_path / "target.lock")  # even the lock file is never written through
    with pytest.raises(LinkRefused, match="is a symbolic link"):
        FolderLock(folder).acquire()
    assert (tmp_path / "target.lock").read_text() == "theirs"


def _small_save(directory: Path, step: int, cfg, n_embd: int = 32) -> Path:
    from lanbot.training.model import GPT, GPTConfig
    from lanbot.training.tokenizer import Tokenizer

    model = GPT(GPTConfig(sequence_len=32, vocab_size=300, n_layer=1, n_head=2, n_kv_head=2, n_embd=n_embd))
    model.init_weights()
    tok = Tokenizer.train(["hello world, who are you? I am LanBot."] * 20, 300)
    return ckpt.save_checkpoint(directory, model, torch.optim.AdamW(model.parameters()), tok, cfg,
                                {"step": step, "stage": "mid"})


def _assert_last_good(directory: Path, step: int) -> None:
    leftovers = [p.name for p in directory.parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == [], leftovers
    _, _, meta = ckpt.load_checkpoint(directory)
    assert meta.step == step


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (root only; skipped where mount is refused)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_during_a_checkpoint_save_is_one_line_no_temp_and_the_last_good_checkpoint(small_disk):
    cfg = compose_config([f"paths.root={small_disk}"])
    directory = small_disk / "ck" / "mid"
    _small_save(directory, 3, cfg)
    filler = small_disk / "filler"
    with open(filler, "wb") as f:  # fill what is left but ~60 KB: the next save runs out partway
        free = shutil.disk_usage(small_disk).free
        f.write(b"\0" * max(0, free - 60_000))
    with pytest.raises(OSError) as failed:
        _small_save(directory, 4, cfg, n_embd=64)
    assert type(failed.value).__name__ == "FileIOError"
    assert str(failed.value).startswith(f"saving the checkpoint {directory}: No space left on device; free some")
    _assert_last_good(directory, 3)


@pytest.mark.parametrize("where", ["weights", "optimizer", "tokenizer", "config"])
def test_a_disk_error_from_any_writer_of_a_save_is_named_and_cleaned_up(tmp_path, monkeypatch, where):
    """The same fault without a small disk: each library's own way of failing on ENOSPC, injected partway."""
    cfg = compose_config([f"paths.root={tmp_path}"])
    directory = tmp_path / "ck" / "mid"
    _small_save(directory, 3, cfg)

    full = "No space left on device (os error 28)"

    def save_model(model, path, **kwargs):  # safetensors: a bare Exception whose text carries the errno
        Path(path).write_bytes(b"half a file")
        raise Exception(f"Error while serializing: I/O error: {full}")

    def torch_save(obj, f):  # torch.save into a file object: a RuntimeError whose context is the OSError
        f.write(b"half a file")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None

    def tokenizer_save(self, directory):  # tokenizers: a bare Exception as well
        (Path(directory) / layout.TOKENIZER_FILE).write_bytes(b"half a file")
        raise Exception(full)

    real_write_text = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name == layout.CONFIG_FILE:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    from lanbot.training.tokenizer import Tokenizer
    target, name, fake = {"weights": (ckpt, "save_model", save_model), "optimizer": (ckpt.torch, "save", torch_save),
                          "tokenizer": (Tokenizer, "save", tokenizer_save),
                          "config": (Path, "write_text", write_text)}[where]
    monkeypatch.setattr(target, name, fake)
    with pytest.raises(OSError, match=f"saving the checkpoint {directory}: No space left on device; free some"):
        _small_save(directory, 4, cfg)
    monkeypatch.undo()
    _assert_last_good(directory, 3)


def test_a_bug_in_a_save_keeps_its_traceback_and_leaves_no_temp(tmp_path, monkeypatch):
    cfg = compose_config([f"paths.root={tmp_path}"])
    directory = tmp_path / "ck" / "mid"
    _small_save(directory, 3, cfg)
    monkeypatch.setattr(ckpt, "save_model", lambda *a, **k: (_ for _ in ()).throw(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):  # not a disk error: not dressed up as one
        _small_save(directory, 4, cfg)
    monkeypatch.undo()
    _assert_last_good(directory, 3)


def test_a_fifo_env_is_refused_naming_it_and_never_hangs(tmp_path):
    os.mkfifo(tmp_path / ".env")
    proc = cli("generate", tmp_path / "out", "backend=template", "data=identity", "data.count=2", cwd=tmp_path,
               timeout=60)
    line = one_line(proc, "generate")
    assert f"{tmp_path / '.env'} is not a regular file (a FIFO" in line
    assert not (tmp_path / "out" / "data").exists() or not any((tmp_path / "out" / "data").rglob("*.jsonl"))


def test_a_non_utf8_env_is_refused_naming_the_file_and_line(tmp_path, monkeypatch):
    (tmp_path / ".env").write_bytes(b"FIRST_KEY=abc\nSECOND_KEY=\xff\xfe-latin1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DotenvError, match=f"{tmp_path / '.env'}:2: not UTF-8 text"):
        known_secrets()
    with pytest.raises(DotenvError, match=f"{tmp_path / '.env'}:2: not UTF-8 text"):
        api_key("SOME_UNSET_VARIABLE_FOR_TEST")
    proc = cli("generate", tmp_path / "out", "backend=template", "data=identity", "data.count=2", cwd=tmp_path,
               timeout=60)
    assert f"{tmp_path / '.env'}:2: not UTF-8 text" in one_line(proc, "generate")


def test_a_folder_named_env_is_a_virtual_environment_not_an_error_and_a_big_env_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").mkdir()  # `python -m venv .env` is common: ignored, as no .env at all
    assert isinstance(known_secrets(), list)
    (tmp_path / ".env").rmdir()
    (tmp_path / ".env").write_text("A_TOKEN=" + "x" * 70_000 + "\n")
    with pytest.raises(DotenvError, match="more than a .env's 65,536"):
        known_secrets()
    (tmp_path / ".env").write_text("MY_TEST_API_KEY=from-the-dotenv-file\n")
    assert api_key("MY_TEST_API_KEY") == "from-the-dotenv-file"
