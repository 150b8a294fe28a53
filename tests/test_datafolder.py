"""The data folder (append-and-resume, dedup, torn lines, the combined file) and stats.json, on real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lanbot.core.layout import COMBINED_FILE, conversations_file, meta_file
from lanbot.generation.datafolder import DataFolder, DataFolderError
from lanbot.generation.stats import compute_stats


def conv(question: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def read(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_add_counts_appends_and_drops_exact_and_near_duplicates(tmp_path):
    with DataFolder(tmp_path / "d", ["identity", "no_tool"]) as folder:
        assert folder.add("identity", conv("Who are you?", "I'm Sage."), {"persona": "a", "language": "en"})
        assert not folder.add("identity", conv("Who are you?", "I'm Sage."), {})           # exact
        assert not folder.add("identity", conv("who are you", "i'm  SAGE!"), {})          # near
        assert not folder.add("no_tool", conv("WHO are you?!", "I'm Sage"), {})            # across types
        assert folder.add("identity", conv("Who made you?", "Your Company."), {"persona": "b", "language": "fr"})
        assert folder.add("no_tool", conv("What's 2 + 2?", "4."), {"persona": "c"})
        assert (folder.count("identity"), folder.count("no_tool")) == (2, 1)
        assert (folder.duplicates("identity"), folder.duplicates("no_tool")) == (2, 1)
        # flushed as written: another reader sees every line before close
        assert len(read(tmp_path / "d" / conversations_file("identity"))) == 2
    assert read(tmp_path / "d" / meta_file("identity")) == [{"persona": "a", "language": "en"},
                                                            {"persona": "b", "language": "fr"}]


def test_reopening_resumes_counts_keys_and_last_meta(tmp_path):
    with DataFolder(tmp_path, ["identity"]) as folder:
        for i in range(5):
            folder.add("identity", conv(f"question {i}", f"answer {i}"), {"index": i})
    with DataFolder(tmp_path, ["reasoning"]) as folder:  # other types on disk still count for dedup
        assert folder.count("identity") == 5 and folder.count("reasoning") == 0
        assert folder.last_meta("identity") == {"index": 4} and folder.last_meta("reasoning") is None
        assert not folder.add("reasoning", conv("Question 3", "answer 3."), {})
        assert folder.add("reasoning", conv("question 9", "answer 9"), {})
        assert folder.present() == ["identity", "reasoning"]


def test_a_torn_last_line_is_cut_and_the_sidecar_realigned(tmp_path):
    with DataFolder(tmp_path, ["tool_use"]) as folder:
        for i in range(4):
            folder.add("tool_use", conv(f"q{i}", f"a{i}"), {"index": i})
    data, meta = tmp_path / conversations_file("tool_use"), tmp_path / meta_file("tool_use")
    text = data.read_text()
    data.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 9])  # a kill mid-way through line 4
    meta.write_text(meta.read_text() + '{"index": 4}\n{"ind')           # the sidecar one line ahead, torn
    with DataFolder(tmp_path, ["tool_use"]) as folder:
        assert folder.count("tool_use") == 3
        assert folder.last_meta("tool_use") == {"index": 2}
        assert folder.add("tool_use", conv("q3", "a3"), {"index": 3})  # the torn one is written again
    assert [c[0]["content"] for c in read(data)] == ["q0", "q1", "q2", "q3"]
    assert [m["index"] for m in read(meta)] == [0, 1, 2, 3]


def test_a_missing_sidecar_is_padded(tmp_path):
    with DataFolder(tmp_path, ["identity"]) as folder:
        folder.add("identity", conv("a", "b"), {"index": 0})
    (tmp_path / meta_file("identity")).unlink()
    with DataFolder(tmp_path, ["identity"]) as folder:
        assert folder.count("identity") == 1
    assert read(tmp_path / meta_file("identity")) == [{"recovered": True}]


def test_overwrite_starts_afresh_and_keeps_foreign_files(tmp_path):
    with DataFolder(tmp_path, ["identity"]) as folder:
        folder.add("identity", conv("a", "b"), {})
        folder.finalize()
    (tmp_path / "notes.txt").write_text("mine")
    with DataFolder(tmp_path, ["no_tool"], overwrite=True) as folder:
        assert folder.count("identity") == 0 and folder.present() == []
        assert folder.add("no_tool", conv("a", "b"), {})  # no longer a duplicate
        assert folder.present() == ["no_tool"]
    assert not (tmp_path / conversations_file("identity")).exists() and not (tmp_path / COMBINED_FILE).exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_finalize_interleaves_every_line_once_atomically(tmp_path):
    with DataFolder(tmp_path, ["identity", "tool_use", "reasoning"]) as folder:
        for i in range(60):
            folder.add("identity", conv(f"id {i}", "x"), {})
        for i in range(30):
            folder.add("tool_use", conv(f"tool {i}", "x"), {})
        for i in range(10):
            folder.add("reasoning", conv(f"why {i}", "x"), {})
        path = folder.finalize()
    assert path == tmp_path / COMBINED_FILE
    combined = [c[0]["content"] for c in read(path)]
    parts = [[c[0]["content"] for c in read(tmp_path / conversations_file(k))] for k in ("identity", "tool_use", "reasoning")]
    assert sorted(combined) == sorted(sum(parts, []))
    for part in parts:  # each type keeps its order and is spread over the whole file
        positions = [combined.index(q) for q in part]
        assert positions == sorted(positions)
        assert positions[0] < len(combined) * 0.1 and positions[-1] > len(combined) * 0.9
    assert not list(tmp_path.glob("*.tmp"))


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DataFolderError, match=r"cannot write the data folder .*a-file/data: creating .*a-file/data: Not a directory.*paths.root="):
        DataFolder(blocker / "data", ["identity"])


def test_a_corrupt_line_is_cut_and_counted(tmp_path):
    (tmp_path / conversations_file("identity")).write_text(json.dumps(conv("a", "b")) + "\n{not json}\n")
    with DataFolder(tmp_path, ["identity"]) as folder:
        assert folder.count("identity") == 1
        assert folder.repairs == {"identity": {"lines_cut": 1, "sidecar_replaced": 0}}


def test_stats_from_the_files_on_disk(tmp_path):
    with DataFolder(tmp_path, ["identity", "tool_use"]) as folder:
        folder.add("identity", conv("who?", "I am Sage. I am here."), {"persona": "p1", "language": "en",
                                                                       "opening": "direct", "phrasing": "who"})
        folder.add("identity", conv("qui es-tu?", "I am sage, I am HERE!") + conv("and?", "Made by Your Company."),
                   {"persona": "p2", "language": "fr", "opening": "greeting", "phrasing": "who"})
        folder.add("tool_use", [{"role": "user", "content": "2+3?"}, {"role": "assistant", "content": [
            {"type": "text", "text": "Adding:"}, {"type": "python", "text": "2+3"},
            {"type": "python_output", "text": "5"}, {"type": "text", "text": "It is 5."}]}],
            {"persona": "p1", "language": "en", "opening": "direct", "phrasing": "sum"})
    stats = compute_stats(tmp_path, ["identity", "tool_use"], {"seconds": 1.5, "backend": "template"})
    assert json.loads((tmp_path / "stats.json").read_text()) == stats
    assert stats["counts"] == {"identity": 2, "tool_use": 1} and stats["total"] == 3
    assert stats["turns"] == {"1": 2, "2": 1} and stats["multi_turn_share"] == round(1 / 3, 4)
    replies = ["I am Sage. I am here.", "I am sage, I am HERE!", "Made by Your Company.", "Adding:", "It is 5."]
    words = " ".join(replies).lower().split()  # words are split on white space, lower case
    assert stats["distinct_1"] == round(len(set(words)) / len(words), 4)
    assert stats["per_type"]["identity"]["unique_first_replies"] == 0.5  # the same first reply, near enough
    assert stats["per_type"]["tool_use"]["calculator_calls"] == 1
    assert stats["languages"] == {"en": 2, "fr": 1} and stats["personas_used"] == 2
    assert stats["openings"] == {"direct": 2, "greeting": 1} and stats["phrasings_used"] == 2
    assert stats["assistant_chars"]["n"] == 3 and stats["seconds"] == 1.5 and stats["backend"] == "template"
