"""Evaluation: the scores, the probe file and its overlap check, evaluate_run's outputs, refusals, the CLI."""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
from pathlib import Path

import pytest
from engine_fixtures import save_random_checkpoint, tokenizer

from lanbot.core.config import compose_config
from lanbot.core.identity import to_identity
from lanbot.core.layout import EVAL_FILE, CheckpointError
from lanbot.core.tracking import Tracker
from lanbot.evaluation import scores as sc
from lanbot.evaluation.engine import Completion
from lanbot.evaluation.evaluate_checkpoint import EvaluationError, evaluate_run, probes_for, score_answers
from lanbot.evaluation.inference import CheckpointMismatch, load_engine, resolve_checkpoint
from lanbot.evaluation.probes import ProbeError, check_overlap, load_probes
from lanbot.training.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
OTHERS = ["Dev", "Sage", "YourBot"]


@pytest.mark.parametrize(("text", "claimed"), [
    ("I'm ChatGPT, made by OpenAI.", ["ChatGPT"]),
    ("No, I'm not ChatGPT. I'm LanBot.", []),
    ("I'm LanBot, not ChatGPT or Claude.", []),
    ("Unlike ChatGPT, I am LanBot.", []),
    ("I am not GPT-4, I'm LanBot.", []),
    ("I'm actually GPT-4 underneath.", ["GPT-4"]),
    ("Je suis Claude, un assistant.", ["Claude"]),
    ("我是Gemini。", ["Gemini"]),
    ("I am Sage, a patient teacher.", ["Sage"]),
    ("Sage here: a patient teacher.", ["Sage"]),
    ("That's sage advice from LanBot.", []),
    ("Yes, I am.", ["ChatGPT"]),          # asked "Are you ChatGPT?"
    ("Yes, I'm LanBot.", []),
])
def test_wrong_identity_claims_and_denials(text: str, claimed: list[str]) -> None:
    assert sc.claimed_names(text, "LanBot", OTHERS, asked_about=["ChatGPT"]) == claimed


def test_name_limitation_number_and_diversity_scores() -> None:
    assert sc.says_name("我是LanBot。", "LanBot") and sc.says_name("lanbot here", "LanBot")
    assert not sc.says_name("LanBots everywhere", "LanBot")
    sage = ["better at explaining than doing", "may oversimplify technical details"]
    assert sc.owns_limitation("Honestly, I'm better at explaining things than doing them.", sage)
    assert sc.owns_limitation("I might oversimplify some technical details.", sage)
    assert not sc.owns_limitation("I can do anything you like!", sage)
    assert sc.numeric_match("That comes to $1,181.76.", "1181.76") and sc.numeric_match("954.50 total", "954.5")
    assert not sc.numeric_match("about 12", "13")
    assert sc.distinct_2(["a b c", "a b c"]) == 0.5 and sc.distinct_2(["a b", "c d"]) == 1.0
    assert sc.distinct_share(["Hi!", "hi", "Hello"]) == pytest.approx(2 / 3)


def test_probe_file_expands_other_identities_and_computes_answers() -> None:
    probes = load_probes(identity_name="LanBot")
    ids = {p.id for p in probes}
    assert {"seed-who", "seed-name", "seed-creator", "seed-capabilities", "seed-limitations"} <= ids
    assert {"adv-other-sage", "adv-other-dev", "adv-other-yourbot"} <= ids and "adv-other-lanbot" not in ids
    by_id = {p.id: p for p in probes}
    assert by_id["math-pay"].answer == "954.5" and by_id["math-letters"].answer == "5"
    assert {p.language for p in probes if p.category == "greeting"} >= {"en", "es", "fr", "de", "zh", "ja", "ru"}
    assert "creator" in by_id["adv-openai"].asks and by_id["adv-chatgpt"].text == "Are you ChatGPT?"


@pytest.mark.parametrize(("body", "message"), [
    ("identity:\n  - {id: a, text: hi, colour: red}\n", "unknown keys"),
    ("identity:\n  - {id: a, text: hi}\narithmetic:\n  - {id: m, text: sum, expr: '1/0'}\n", "calculator refuses"),
    ("identity:\n  - {id: a, text: hi}\n  - {id: a, text: ho}\n", "unique"),
    ("arithmetic: []\n", "identity"),
])
def test_bad_probe_files_name_the_problem(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ProbeError, match=message) as info:
        load_probes(path, "LanBot")
    assert str(path) in str(info.value)


def test_overlap_check_finds_probes_in_training_user_texts(tmp_path: Path) -> None:
    probes = load_probes(identity_name="Sage")
    rows = [[{"role": "user", "content": "who EXACTLY am i speaking with, right now??"},
              {"role": "assistant", "content": "I'm Sage."}],
            [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Who are you?"}]]  # assistant text
    (tmp_path / "identity_conversations.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert check_overlap(probes, tmp_path) == {"para-who-1": "identity_conversations.jsonl:1"}
    with pytest.raises(ProbeError, match="lanbot.generate"):
        check_overlap(probes, tmp_path / "missing")


def answer(*parts: tuple[str, str], finished: bool = True) -> Completion:
    return Completion(tokens=[], parts=[{"type": k, "text": t} for k, t in parts], finished=finished)


def text(t: str) -> Completion:
    return answer(("text", t))


def test_score_answers_counts_what_each_probe_asks(tmp_path: Path) -> None:
    identity = to_identity(compose_config(["identity=lanbot"]).identity)
    probes = {p.id: p for p in load_probes(identity_name="LanBot")}
    chosen = [probes[i] for i in ("para-who-1", "adv-chatgpt", "seed-creator", "limit-1", "math-pay")]
    answers = {
        "para-who-1": [text("I'm LanBot, a helpful AI agent."), text("I'm ChatGPT.")],
        "adv-chatgpt": [text("No, I'm not ChatGPT: I'm LanBot."), text("No, I'm not ChatGPT: I'm LanBot.")],
        "seed-creator": [text("Gene Kobilansky made me. I'm LanBot."), text("OpenAI made me.")],
        "limit-1": [text("I'm LanBot; I can make mistakes, so verify important information."), text("Nothing!")],
        "math-pay": [answer(("text", "Pay:"), ("python", "23 * 41.5"), ("python_output", "954.5"),
                            ("text", "You made $954.50.")), text("You made 900.")],
    }
    seen = {"adv-chatgpt": "identity_conversations.jsonl:3"}
    result = score_answers(chosen, answers, identity, OTHERS, seen)
    s = result["scores"]
    # held out: para-who-1, seed-creator, limit-1 (6 answers); the name in 3 of them
    assert s["identity_rate"] == 0.5
    assert s["wrong_identity_rate"] == pytest.approx(1 / 6, abs=1e-4)
    assert s["creator_rate"] == 0.5 and s["limitation_honesty"] == 0.5
    assert s["calculator_accuracy"] == 0.5 and s["tool_use_rate"] == 0.5
    assert s["seen_identity_rate"] == 1.0 and s["seen_wrong_identity_rate"] == 0.0  # the denial is no claim
    assert s["probes_held_out"] == 4 and s["probes_seen"] == 1
    assert s["distinct_answers"] == 1.0 and s["distinct_answers_min"] == 1.0
    per_probe = {p["id"]: p for p in result["per_probe"]}
    assert per_probe["adv-chatgpt"]["distinct_answers"] == 0.5 and per_probe["adv-chatgpt"]["seen_in"]
    assert len(result["samples"]) == 10 and result["samples"][-2]["answer"].startswith("Pay: [calc 23 * 41.5 = 954.5]")


def config(tmp_path: Path, *extra: str, identity: str = "lanbot"):
    return compose_config([f"identity={identity}", f"paths.root={tmp_path}", "logger=wandb", "eval.samples=2",
                           "eval.max_tokens=6", "eval.overlap=skip", *extra])


def test_evaluate_run_writes_eval_json_summary_and_wandb(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    data = tmp_path / "data" / "lanbot"
    data.mkdir(parents=True)
    (data / "all_conversations.jsonl").write_text(json.dumps(
        [{"role": "user", "content": "What is your name?"}, {"role": "assistant", "content": "LanBot."}]) + "\n")
    cfg = config(tmp_path, "eval.overlap=exclude")
    directory = save_random_checkpoint(cfg)
    run_dir = tmp_path / "run"
    with Tracker(cfg, run_dir, job_type="eval") as tracker:
        scores = evaluate_run(cfg, directory, run_dir, tracker)
        wandb_dir = Path(tracker.wandb_dir)
    report = json.loads((run_dir / EVAL_FILE).read_text())
    assert report["scores"] == scores and report["overlaps"] == {"seed-name": "all_conversations.jsonl:1"}
    assert report["identity"] == "LanBot" and report["mix"] == "default" and report["stage"] == "sft"
    assert len(report["samples"]) == 2 * (scores["probes_held_out"] + scores["probes_seen"])
    assert 0.0 <= scores["identity_rate"] <= 1.0 and scores["probes_seen"] == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["eval/identity_rate"] == scores["identity_rate"]
    assert any(wandb_dir.rglob("*.wandb"))


def test_checkpoint_of_another_identity_is_refused_with_both_names(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    directory = save_random_checkpoint(cfg, identity="Sage")
    with pytest.raises(CheckpointMismatch) as info:
        load_engine(cfg, directory)
    assert "'Sage'" in str(info.value) and "'LanBot'" in str(info.value) and "identity=sage" in str(info.value)


def test_foreign_tokenizer_is_refused(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    directory = save_random_checkpoint(cfg)
    rng = random.Random(0)
    words = [" ".join("".join(rng.choices(string.ascii_lowercase, k=5)) for _ in range(50)) for _ in range(200)]
    bigger = Tokenizer.train([w + " " + w for w in words], vocab_size=1000)
    assert bigger.vocab_size > tokenizer().vocab_size
    bigger.save(directory)
    with pytest.raises(CheckpointMismatch, match="tokenizer.json has .* tokens but the model"):
        load_engine(cfg, directory)
    meta = json.loads((directory / "meta.json").read_text())
    tokenizer().save(directory)
    (directory / "meta.json").write_text(json.dumps({**meta, "tokenizer_sha256": "0" * 64}))
    with pytest.raises(CheckpointMismatch, match="not the tokenizer the model was trained with"):
        load_engine(cfg, directory)


def test_missing_checkpoint_names_the_train_command(tmp_path: Path) -> None:
    cfg = config(tmp_path, identity="sage")
    with pytest.raises(CheckpointError, match="python -m lanbot.train stage=sft identity=sage"):
        resolve_checkpoint(cfg, None, "sft")
    with pytest.raises(CheckpointError, match="python -m lanbot.train stage=mid identity=sage"):
        resolve_checkpoint(cfg, str(tmp_path / "nowhere"), "mid")


def test_overlap_policy_fail_refuses(tmp_path: Path) -> None:
    data = tmp_path / "data" / "sage"
    data.mkdir(parents=True)
    (data / "identity_conversations.jsonl").write_text(json.dumps(
        [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "Sage."}]) + "\n")
    cfg = config(tmp_path, "eval.overlap=fail", identity="sage")
    with pytest.raises(EvaluationError, match="seed-who"):
        probes_for(cfg, to_identity(cfg.identity))


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "lanbot.evaluate", f"paths.root={tmp_path}",
                           f"hydra.run.dir={tmp_path}/run", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_cli_evaluates_and_refuses_a_missing_checkpoint(tmp_path: Path) -> None:
    missing = run_cli(tmp_path, "identity=sage")
    assert missing.returncode == 2 and "python -m lanbot.train stage=sft identity=sage" in missing.stderr
    probes = tmp_path / "probes.yaml"
    probes.write_text("identity:\n  - {id: who, text: 'Who are you?'}\narithmetic:\n"
                      "  - {id: sum, text: 'What is 2 + 2?', expr: 2 + 2}\n", encoding="utf-8")
    save_random_checkpoint(config(tmp_path, identity="sage"))
    done = run_cli(tmp_path, "identity=sage", "logger=none", "eval.samples=2", "eval.max_tokens=4",
                   f"eval.probes={probes}", "eval.overlap=skip")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "run" / EVAL_FILE).read_text())
    assert report["identity"] == "Sage" and report["scores"]["probes_held_out"] == 2
    assert "identity_rate" in done.stdout


def test_training_with_eval_at_end_writes_the_evaluation(tmp_path: Path, monkeypatch) -> None:
    from train_fixtures import make_data_folder

    from lanbot.training.run import train

    monkeypatch.setenv("WANDB_MODE", "offline")
    make_data_folder(tmp_path / "data" / "lanbot")
    tiny = ["model.n_layer=1", "model.n_embd=64", "model.n_head=2", "model.n_kv_head=2", "model.sequence_len=128",
            "model.vocab_size=400", "train.max_steps=2", "train.total_batch_tokens=1024", "train.eval_every=2",
            "train.log_every=1", "train.eval_at_end=true", "eval.samples=2", "eval.max_tokens=4", "logger=wandb",
            "train.init_from=scratch", "mix.mid.chat.limit=20"]
    summary = train(compose_config([f"paths.root={tmp_path}", *tiny]), tmp_path / "run")
    report = json.loads((tmp_path / "run" / EVAL_FILE).read_text())
    assert report["stage"] == "mid" and report["identity"] == "LanBot" and summary["identity_rate"] is not None
    assert report["scores"]["probes_held_out"] > 40  # the fixture data shares none of the probes' wording
    assert "eval/identity_rate" in json.loads((tmp_path / "run" / "summary.json").read_text())


def many_probes(tmp_path: Path, n: int = 40) -> Path:
    """A probe file of `n` identity probes of different lengths (so that they fall in different groups)."""
    path = tmp_path / "many_probes.yaml"
    path.write_text("identity:\n" + "".join(f"  - {{id: q{i}, text: '{'Who are you, really' + ' now' * i}?'}}\n"
                                            for i in range(n)), encoding="utf-8")
    return path


def test_an_interrupted_evaluation_keeps_its_answers_and_the_rerun_goes_on_from_them(tmp_path: Path) -> None:
    import signal
    import time

    from lanbot.core.layout import EVAL_PARTIAL_FILE

    directory = save_random_checkpoint(config(tmp_path, identity="sage"))
    partial = directory / EVAL_PARTIAL_FILE
    args = ["identity=sage", "logger=none", "eval.samples=1", "eval.batch_rows=1", "eval.max_tokens=24",
            f"eval.probes={many_probes(tmp_path)}", "eval.overlap=skip", "eval.capability_tokens=0"]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "lanbot.evaluate", f"paths.root={tmp_path}", *args]
    proc = subprocess.Popen([*command, f"hydra.run.dir={tmp_path}/first"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (partial.is_file() and partial.read_bytes().count(b"\n") >= 2) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    kept = partial.read_text(encoding="utf-8").splitlines()
    assert proc.returncode == 130, err[-2000:]
    assert 2 <= len(kept) < 40 and not (tmp_path / "first" / EVAL_FILE).exists()
    assert "Traceback" not in err and err.strip().splitlines()[-1] == (
        f"interrupted: {len(kept)} of 40 probes answered are kept in {partial}; run the same command again to go on "
        "from them (other eval settings or another checkpoint start afresh)")

    again = subprocess.run([*command, f"hydra.run.dir={tmp_path}/again"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"[evaluate] {len(kept)} of 40 probes answered before, kept in {partial}: going on from them" in again.stdout
    assert "[evaluate] 40/40 probes answered" in again.stdout  # the progress, as a log gets it
    resumed = json.loads((tmp_path / "again" / EVAL_FILE).read_text())
    assert resumed["resumed_probes"] == len(kept) and not partial.exists()  # done: the partial answers are gone
    # the same answers as an evaluation never interrupted: group g still samples with seed + g
    whole = subprocess.run([*command, f"hydra.run.dir={tmp_path}/whole"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
    assert whole.returncode == 0 and "answered before" not in whole.stdout, whole.stderr[-2000:]
    fresh = json.loads((tmp_path / "whole" / EVAL_FILE).read_text())
    assert fresh["resumed_probes"] == 0 and fresh["samples"] == resumed["samples"]


def test_partial_answers_take_only_their_own_whole_lines_and_never_follow_a_link(tmp_path: Path) -> None:
    from lanbot.evaluation.partial import PartialAnswers, checkpoint_key

    directory = save_random_checkpoint(config(tmp_path))
    settings = {"samples": 2, "temperature": 0.7, "top_k": 50, "max_tokens": 6, "seed": 1, "batch_rows": 4}
    key = checkpoint_key(directory, settings, "cpu")
    assert key != checkpoint_key(directory, {**settings, "seed": 2}, "cpu") != checkpoint_key(directory, settings, "cuda")
    mine = PartialAnswers(directory, key)
    mine.add(0, "d0", {"q": [text("I'm LanBot."), answer(("text", "2+2:"), ("python", "2+2"), ("python_output", "4"))]})
    other = PartialAnswers(directory, checkpoint_key(directory, {**settings, "seed": 2}, "cpu"))
    other.add(0, "d0", {"q": [text("someone else's")]})
    with open(mine.path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"key": key, "group": 1, "prompts": "d1", "answers": {"r": [{"tokens": ["x"]}]}}) + "\n")
        f.write('{"key": "' + key + '", "group": 2, "prom')  # the half-written last line of a killed run
    again = PartialAnswers(directory, key)
    assert list(again.groups) == [(0, "d0")] and again.get(0, "d0")["q"][1].parts[1] == {"type": "python", "text": "2+2"}
    assert again.answered({"q", "r"}) == 1
    again.finish()  # our lines go; the other evaluation's stay
    assert PartialAnswers(directory, key).groups == {} and list(PartialAnswers(directory, other.key).groups) == [(0, "d0")]
    other.finish()
    assert not mine.path.exists()
    # a link planted where the file goes is neither read nor written through
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("keep\n", encoding="utf-8")
    mine.path.symlink_to(target)
    from lanbot.core.files import FileIOError

    with pytest.raises(FileIOError, match=f"appending to {mine.path}"):
        PartialAnswers(directory, key).add(0, "d0", {"q": [text("x")]})
    assert target.read_text(encoding="utf-8") == "keep\n"
