"""What lanbot writes atomically (temp file + rename) gets a plain file's mode, not mkstemp's 0600."""

import os
from pathlib import Path

from lanbot.core.files import write_json_atomic
from lanbot.training.tokenizer import Tokenizer


def _plain() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def test_atomic_writes_have_a_plain_files_mode(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "eval.json", {"identity_rate": 1.0})
    saved = Tokenizer.train(["hello world, who are you?"] * 20, vocab_size=300).save(tmp_path / "ckpt")
    for path in (tmp_path / "eval.json", saved):
        assert path.stat().st_mode & 0o777 == _plain(), path
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ckpt", "eval.json", "tokenizer.json"]  # no temp left


def test_a_failed_atomic_write_keeps_the_last_good_file(tmp_path: Path) -> None:
    import pytest

    from lanbot.core.files import atomic_path, write_text_atomic

    target = tmp_path / "report.md"
    write_text_atomic(target, "good")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]
