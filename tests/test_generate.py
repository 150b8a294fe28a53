"""`python -m lanbot.generate` end to end, with the real template writer on real files in tmp folders.

In-process runs (lanbot.generate.generate) check the data; subprocesses check what only the command line
shows: a kill and resume, the wandb offline run, no torch import, and the errors with their exit codes.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from lanbot.core.calculator import calculate, format_number
from lanbot.core.config import CONF_DIR, compose_config
from lanbot.core.conversation import TOOL_TYPES, TYPES, dedup_key, tool_calls, validate
from lanbot.core.identity import to_identity
from lanbot.core.layout import COMBINED_FILE, conversations_file, meta_file
from lanbot.generation.generate_data import generate
from lanbot.generation.report import flatten

REPO = Path(__file__).resolve().parents[1]
DEFAULT_COUNTS = {"identity": 500, "tool_use": 400, "multi_step_tool": 300, "no_tool": 200,
                  "tool_planning": 200, "reasoning": 200}
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO)}
ENV.pop("HYDRA_FULL_ERROR", None)


def run_generate(root: Path, *overrides: str) -> dict:
    cfg = compose_config([f"paths.root={root}", "logger=none", *overrides])
    return generate(cfg, root / "run", console=Console(file=io.StringIO()))


def lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def cli(*args: str, root: Path | None = None, **popen) -> subprocess.Popen:
    extra = [f"paths.root={root}", f"hydra.run.dir={root}/run"] if root else []
    return subprocess.Popen([sys.executable, "-m", "lanbot.generate", *args, *extra], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The default run: identity=lanbot, data=all, 1,800 conversations."""
    root = tmp_path_factory.mktemp("full")
    stats = run_generate(root)
    return stats, root / "data" / "lanbot"


def test_counts_are_exact_and_the_combined_file_holds_every_line(full_run):
    stats, folder = full_run
    for kind, n in DEFAULT_COUNTS.items():
        assert len(lines(folder / conversations_file(kind))) == n == stats["counts"][kind]
        assert len(lines(folder / meta_file(kind))) == n
    combined = lines(folder / COMBINED_FILE)
    assert len(combined) == 1800 == stats["total"]
    everything = [c for kind in TYPES for c in lines(folder / conversations_file(kind))]
    assert sorted(map(json.dumps, combined)) == sorted(map(json.dumps, everything))
    assert {kind for kind in TYPES if lines(folder / conversations_file(kind))[0] in combined[:40]} == set(TYPES)  # interleaved
    assert len({dedup_key(c) for c in combined}) == 1800  # no exact or near duplicates


def test_every_line_follows_nanochat_customjson_rules(full_run):
    _, folder = full_run
    for path in [folder / COMBINED_FILE, *(folder / conversations_file(k) for k in TYPES)]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            messages = json.loads(line)
            where = f"{path.name}:{number}"
            assert isinstance(messages, list) and len(messages) >= 2, where
            for i, message in enumerate(messages):
                assert set(message) == {"role", "content"}, where
                assert message["role"] == ("user" if i % 2 == 0 else "assistant"), where
                content = message["content"]
                if message["role"] == "user" or isinstance(content, str):
                    assert isinstance(content, str) and content.strip(), where
                else:
                    assert content and all(set(p) == {"type", "text"} and p["text"].strip() for p in content), where
                    assert {p["type"] for p in content} <= {"text", "python", "python_output"}, where
            assert messages[-1]["role"] == "assistant", where
    for kind in TYPES:
        for conv in lines(folder / conversations_file(kind)):
            assert validate(conv, kind, "LanBot") == []


def test_every_tool_call_is_the_calculators_and_pythons_result(full_run):
    _, folder = full_run
    calls = 0
    for kind in TYPES:
        for conv in lines(folder / conversations_file(kind)):
            pairs = tool_calls(conv)
            assert bool(pairs) == (kind in TOOL_TYPES), (kind, conv)
            for expression, output in pairs:
                assert output == calculate(expression), expression
                # an independent judge: Python itself, on expressions the calculator already accepted
                assert output == format_number(eval(expression, {"__builtins__": {"len": len}}, {})), expression
                calls += 1
    assert calls >= 400 + 300 * 2 + 200


def test_diversity_floors(full_run):
    stats, folder = full_run
    identity = lines(folder / conversations_file("identity"))
    firsts = {json.dumps(conv[1]["content"]) for conv in identity}
    assert len(identity) == 500 and len(firsts) / 500 >= 0.9
    languages = Counter(m["language"] for m in lines(folder / meta_file("identity")))
    assert len(languages) >= 6 and languages["en"] < 500, languages
    assert stats["languages"]["en"] < 1800 and len(stats["languages"]) >= 6
    assert stats["personas_used"] >= 50
    assert len(stats["openings"]) >= 5
    assert sum(stats["turns"][t] for t in stats["turns"] if int(t) >= 2) >= 100  # multi-turn exchanges
    assert stats["unique_first_replies"] >= 0.9 and stats["distinct_2"] > stats["distinct_1"] > 0


def test_stats_json_describes_the_folder(full_run):
    stats, folder = full_run
    assert json.loads((folder / "stats.json").read_text()) == stats
    assert stats["targets"] == DEFAULT_COUNTS and stats["resumed_from"] == dict.fromkeys(DEFAULT_COUNTS, 0)
    assert stats["duplicates_dropped"].keys() == stats["invalid_dropped"].keys() == DEFAULT_COUNTS.keys()
    assert stats["backend"] == "template" and stats["model"] == "templates" and stats["seed"] == 42
    assert stats["identity"] == "LanBot" and stats["preset"] == "all" and stats["personas_source"] == "builtin"
    assert 0 < stats["seconds"] < 60
    for kind, n in DEFAULT_COUNTS.items():
        per = stats["per_type"][kind]
        assert per["count"] == n and sum(per["turns"].values()) == n and per["assistant_chars"]["n"] == n
        assert stats["attempts"][kind] == n + stats["duplicates_dropped"][kind] + stats["invalid_dropped"][kind]
    assert sum(stats["turns"].values()) == 1800 == sum(stats["assistant_chars_histogram"].values())
    q = stats["quality"]  # issue 11: how varied the data really is, beside distinct-n (wandb gets the same keys)
    assert q["identity_replies"] >= 500 and 0 < q["top_sentence_share"] <= 0.03 and q["distinct_masked_sentences"] >= 900
    assert 0 < q["self_bleu4"] < 1 and q["verbatim_recitation_share"] <= 0.05 and q["rejected_reasons"] == {}
    # issue 23: the identity's content beside the control's on the same items, from the sidecars' pairs
    ratio = q["content_length_ratio_vs_control"]
    assert set(ratio) == set(DEFAULT_COUNTS) - {"identity"}, ratio
    for kind, value in ratio.items():
        metas = lines(folder / meta_file(kind))
        assert all(m["content_chars"] > 0 and m["control_content_chars"] > 0 for m in metas), kind
        assert value == round(sum(m["content_chars"] for m in metas) / sum(m["control_content_chars"] for m in metas), 3)
        assert 0.6 < value < 2.5, (kind, value)  # voice on top of the same content, neither cut nor padded
    from lanbot.generation.personas import read_builtin
    from lanbot.generation.quality import content_chars
    from lanbot.generation.template.backend import control_writer

    control = control_writer(to_identity(compose_config(["identity=lanbot"]).identity), read_builtin(), 42)
    first = lines(folder / meta_file("no_tool"))[0]  # the control's own reply to the same item, written afresh
    assert first["control_content_chars"] == content_chars(control.write("no_tool", first["index"])[0])
    assert control_writer(to_identity(compose_config(["identity=assistant"]).identity), [], 42) is None


def test_resume_after_a_torn_write_equals_an_uninterrupted_run(tmp_path):
    run_generate(tmp_path / "whole", "data.count=40")
    broken = tmp_path / "broken"
    run_generate(broken, "data.count=40")
    folder = broken / "data" / "lanbot"
    text = (folder / conversations_file("identity")).read_text()
    (folder / conversations_file("identity")).write_text(text[: len(text) // 2])  # killed mid-line
    text = (folder / conversations_file("multi_step_tool")).read_text()
    (folder / conversations_file("multi_step_tool")).write_text(text[: text.index("\n") + 1])  # killed after one line
    (folder / conversations_file("reasoning")).unlink()
    (folder / meta_file("reasoning")).unlink()
    (folder / COMBINED_FILE).unlink()
    stats = run_generate(broken, "data.count=40")
    assert 0 < stats["resumed_from"]["identity"] < 40 and stats["resumed_from"]["multi_step_tool"] == 1
    assert stats["resumed_from"]["reasoning"] == 0 and stats["resumed_from"]["tool_use"] == 40
    assert sum(stats["duplicates_dropped"].values()) == 0  # it picked up at the next index, nothing redone
    for name in [COMBINED_FILE, *(f(k) for k in TYPES for f in (conversations_file, meta_file))]:
        assert (folder / name).read_bytes() == (tmp_path / "whole" / "data" / "lanbot" / name).read_bytes(), name


def test_a_killed_run_resumes_with_exact_counts_and_no_duplicates(tmp_path):
    args = ("data=all", "data.count=2500", "logger=none")
    folder = tmp_path / "data" / "lanbot"
    proc = cli(*args, root=tmp_path)
    deadline = time.monotonic() + 60
    while not (folder / conversations_file("tool_use")).exists() or (folder / conversations_file("tool_use")).stat().st_size < 1000:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not (folder / COMBINED_FILE).exists()  # it really was killed half-way
    on_disk = {k: len((folder / conversations_file(k)).read_bytes().splitlines()) if (folder / conversations_file(k)).exists() else 0
               for k in TYPES}
    assert on_disk["identity"] == 2500 and on_disk["reasoning"] == 0

    out, err = cli(*args, root=tmp_path).communicate(timeout=120)
    assert "Data folder" in out, err
    keys = set()
    for kind in TYPES:
        rows = lines(folder / conversations_file(kind))
        assert len(rows) == 2500 == len(lines(folder / meta_file(kind))), kind
        keys |= {dedup_key(r) for r in rows}
    assert len(keys) == 6 * 2500
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["resumed_from"]["identity"] == 2500 and stats["counts"] == dict.fromkeys(TYPES, 2500)
    assert len(lines(folder / COMBINED_FILE)) == 15000


def test_overwrite_starts_afresh(tmp_path):
    run_generate(tmp_path, "data=all", "data.count=6")
    stats = run_generate(tmp_path, "data=agentic", "data.count=3", "data.overwrite=true")
    folder = tmp_path / "data" / "lanbot"
    assert stats["counts"] == dict.fromkeys(["tool_use", "multi_step_tool", "no_tool", "tool_planning"], 3)
    assert not (folder / conversations_file("identity")).exists() and len(lines(folder / COMBINED_FILE)) == 12


def test_one_folder_per_identity(tmp_path):
    run_generate(tmp_path, "identity=sage", "data=identity", "data.count=5")
    run_generate(tmp_path, "identity=dev", "data=identity", "data.count=4")
    assert len(lines(tmp_path / "data" / "sage" / conversations_file("identity"))) == 5
    assert len(lines(tmp_path / "data" / "dev" / conversations_file("identity"))) == 4
    assert all("Sage" in json.dumps(c) for c in lines(tmp_path / "data" / "sage" / COMBINED_FILE))


def _wandb_records(run_file: Path) -> list[dict]:
    wandb_cli = Path(sys.executable).parent / "wandb"
    out = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", str(run_file)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_cli_logs_the_stats_to_an_offline_wandb_run_without_importing_torch(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "lanbot.generate", "identity=sage", "data=identity",
         "data.count=30", "logger=wandb", f"paths.root={tmp_path}", f"hydra.run.dir={tmp_path}/run"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "lanbot.generation.template.writer" in imported and "wandb" in imported
    assert not {m for m in imported if m == "torch" or m.startswith("torch.")}, "lanbot.generate imported torch"
    folder = tmp_path / "data" / "sage"
    out = " ".join(proc.stdout.split())
    assert f"Data folder: {folder}" in out and f"Run folder: {tmp_path / 'run'}" in out and "wandb sync" in out
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["counts"] == {"identity": 30}

    run_files = list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1
    records = _wandb_records(run_files[0])
    run = next(r["run"] for r in records if r.get("type") == "run")
    assert run["job_type"] == "generate" and {"sage", "identity"} <= set(run["tags"])
    summary: dict = {}
    for r in records:
        if r.get("type") == "summary":
            summary.update(r["summary"].get("update", {}))
    for key, value in flatten(stats).items():
        assert summary[key] == value, key
    assert summary["histogram/turns"]["_type"] == "histogram" if isinstance(summary.get("histogram/turns"), dict) \
        else summary["histogram/turns._type"] == "histogram"
    assert any(k.startswith("sample_conversations") for k in summary)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["counts/identity"] == 30


def test_bad_input_is_one_clear_paragraph_and_loses_nothing(tmp_path):
    existing = tmp_path / "ok"
    run_generate(existing, "data.count=3")
    before = {p.name: p.read_bytes() for p in (existing / "data" / "lanbot").iterdir()}
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR / "identity", conf / "identity")
    good = (CONF_DIR / "identity" / "sage.yaml").read_text()
    (conf / "identity" / "typo.yaml").write_text(good + "nmae: Oops\n")
    (conf / "identity" / "badyear.yaml").write_text(good.replace("year: 2025", "year: next spring"))
    (conf / "identity" / "badlist.yaml").write_text(good.split("quirks:")[0] + "capabilities: fly\n")
    (conf / "identity" / "broken.yaml").write_text(good.replace("quirks:", "quirks: [unclosed"))
    (conf / "identity" / "noschema.yaml").write_text("name: Zed\nnickname: Z\n")  # no `defaults: [identity_schema]`
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    wipe = ("data.overwrite=true", f"paths.root={existing}", f"hydra.run.dir={tmp_path}/runs/x", "logger=none")
    cases = {
        "identity": (("identity=nobody", *wipe), 2,
                     ["unknown identity 'nobody'", "dev, lanbot, sage, yourbot", "conf/identity/nobody.yaml"]),
        "field": (("--config-dir", str(conf), "identity=typo", *wipe), 2,
                  [f"{conf / 'identity' / 'typo.yaml'}: bad field identity.nmae", "not in 'ModelIdentity'"]),
        "type": (("--config-dir", str(conf), "identity=badyear", *wipe), 2,
                 [f"{conf / 'identity' / 'badyear.yaml'}: bad field identity.year", "could not be converted to Integer"]),
        "list": (("--config-dir", str(conf), "identity=badlist", *wipe), 2,
                 [f"{conf / 'identity' / 'badlist.yaml'}: bad field identity.capabilities", "it must be a list"]),
        "yaml": (("--config-dir", str(conf), "identity=broken", *wipe), 2,
                 [f"{conf / 'identity' / 'broken.yaml'}, line 11: not valid YAML", "Fix that line"]),
        "no_schema": (("--config-dir", str(conf), "identity=noschema", *wipe), 2,
                      [f"{conf / 'identity' / 'noschema.yaml'}: bad field identity.nickname", "identity_schema, _self_"]),
        "personas": (("personas=nemotron", f"personas.path={tmp_path}/no-such-personas", *wipe), 2,
                     ["personas.path=", "no such file or folder"]),
        "contradiction": (("identity=dev", "identity.capabilities=[translate text,summarize documents]", *wipe), 2,
                          ["identity.description 'a practical coding assistant' says 'coding'",
                           "add a capability", "'write and debug code'", "or take 'coding' out of identity.description"]),
        "denied": (("identity=dev", "identity.limitations=[cannot write code for production]", *wipe), 2,
                   ["identity.limitations[0] 'cannot write code for production' denies coding",
                    "identity.description", "identity.capabilities[0]", "drop that limitation"]),
        "count": (("data.count=-3", *wipe), 2, ["data.count=-3 is not a count"]),
        "type_name": (("data.types=[identity,smalltalk]", *wipe), 2,
                      ["unknown type(s) 'smalltalk'", "identity, tool_use, multi_step_tool, no_tool"]),
        "run_dir": ((f"paths.root={blocker}/out", "logger=none"), 2, ["creating the run folder", "paths.root"]),
        "data_dir": ((f"paths.data_dir={blocker}/data", f"hydra.run.dir={tmp_path}/runs/y", "logger=none"), 2,
                     [f"cannot write the data folder {blocker}/data", "paths.root="]),
    }
    procs = {name: cli(*args) for name, (args, _, _) in cases.items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        _, code, needles = cases[name]
        message = " ".join(err.split())
        assert proc.returncode == code, (name, out, err)
        assert "Traceback" not in err and message.startswith("error lanbot.generate:"), (name, err)
        for needle in needles:
            assert needle in message, (name, needle, message)
        assert "identity_schema" not in message or name == "no_schema"
    assert {p.name: p.read_bytes() for p in (existing / "data" / "lanbot").iterdir()} == before


def test_overriding_the_quirks_drops_the_hints_of_the_quirks_left_out(tmp_path):
    """identity.quirks on the command line: the hints of the quirks left out go, in one line; the kept one stays."""
    kept = "starts explanations with 'Great question!'"
    proc = cli("identity=sage", f'identity.quirks=["{kept}", "ends with a haiku"]', "data=identity", "data.count=30",
               "logger=none", root=tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    notes = [line for line in err.splitlines() if "command line" in line]
    assert len(notes) == 1 and "identity.quirks was set on the command line" in notes[0], err
    assert "'uses analogies from cooking and gardening', 'asks follow-up questions to check understanding'" in notes[0]
    assert "Great question" not in notes[0].split("for", 1)[1]
    saved = json.loads((tmp_path / "data" / "sage" / "stats.json").read_text())
    assert list(saved["quality"]["quirks"]) == [kept], saved["quality"]["quirks"]  # the kept hint still acts
    # a hint in the file that names an unlisted quirk is still an error: there it is a typo, not a stale hint
    typo = cli("identity=sage", "identity.quirk_hints=[{quirk: nope, kind: opener}]", "logger=none", root=tmp_path)
    _, err = typo.communicate(timeout=120)
    assert typo.returncode == 2 and "identity.quirk_hints[0].quirk 'nope' is not one of identity.quirks" in err


def test_every_shipped_card_agrees_with_itself():
    from lanbot.core.identity import IdentityError, check_consistent, to_identity

    for path in sorted((CONF_DIR / "identity").glob("*.yaml")):
        check_consistent(to_identity(compose_config([f"identity={path.stem}"]).identity))
    sage = to_identity(compose_config(["identity=sage", "identity.capabilities=[write short poems]"]).identity)
    with pytest.raises(IdentityError, match=r"identity.description .* says 'teacher' \(teaching\)"):
        check_consistent(sage)
