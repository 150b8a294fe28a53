"""The small things a newcomer meets: a suggested command keeps the user's own overrides, an identity error
through a search path names its file, a duplicate YAML key is named on its own line, `train=sft` alone is one
line naming the fix, compare's table is whole in a pipe, and the fidelity and loss plots say what they show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lanbot.core.config import compose_config
from lanbot.generation.generate_data import generate

REPO = Path(__file__).resolve().parents[1]


def lanbot(app: str, *args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen([sys.executable, "-m", f"lanbot.{app}", *args, "logger=none"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def one_line(proc: subprocess.Popen, app: str) -> str:
    out, err = proc.communicate(timeout=180)
    message = " ".join(err.split())
    assert proc.returncode == 2 and "Traceback" not in err, (out, err[-2000:])
    assert message.startswith(f"error lanbot.{app}:"), message
    return message


def test_suggested_commands_keep_the_users_paths_and_train_sft_alone_is_refused(tmp_path):
    """The "no base" hint carries `paths.root=...` (quoted: it has a space), so copying it writes the base where
    this run looks for it. `train=sft` with the default stage (mid) is one line naming the fix."""
    root = tmp_path / "my runs"
    generate(compose_config(["data.count=2", f"paths.root={root}", "logger=none"]), tmp_path / "gen-run")
    procs = {"no_base": lanbot("train", "stage=mid", f"paths.root={root}", cwd=tmp_path),
             "train_sft": lanbot("train", "train=sft", f"paths.root={root}", cwd=tmp_path)}
    message = one_line(procs["no_base"], "train")
    assert f"`python -m lanbot.train stage=base corpus=bundled model=tiny 'paths.root={root}'`" in message, message
    message = one_line(procs["train_sft"], "train")
    assert "train=sft" in message and "the stage is mid" in message and "give stage=sft" in message, message
    assert not list(root.rglob("model.safetensors"))  # nothing trained


def test_suggested_commands_carry_paths_and_search_path_only(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from lanbot.core import layout
    from lanbot.core.config import CONFIG_PATH

    assert layout.carried_overrides() == ""  # outside an app: nothing to carry
    overrides = ["identity=sage", "train.max_steps=5", f"paths.root={tmp_path}/a b", "paths.checkpoints=/ck",
                 f"hydra.searchpath=[file://{tmp_path}]"]
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        carried = f" 'paths.root={tmp_path}/a b' paths.checkpoints=/ck 'hydra.searchpath=[file://{tmp_path}]'"
        assert layout.carried_overrides() == carried
        assert layout.train_command(cfg, "mid") == f"python -m lanbot.train stage=mid identity=sage mix=default " \
            f"model=tiny{carried}"
        assert layout.train_command(cfg, "base").endswith(f"stage=base corpus=bundled model=tiny{carried}")
    finally:
        HydraConfig.instance().cfg = None


def test_train_choice_check_leaves_matching_and_own_options_alone():
    from lanbot.training.run import TrainError, check_train_choice

    check_train_choice("sft", "sft")
    check_train_choice("my_fast_settings", "mid")  # a train option of the user's own, not a stage's
    with pytest.raises(TrainError, match="give stage=base"):
        check_train_choice("base", "mid")


def test_identity_errors_through_a_search_path_name_the_file_and_line(tmp_path):
    conf = tmp_path / "myconf" / "identity"
    conf.mkdir(parents=True)
    head = "defaults: [identity_schema, _self_]\nname: Custom\ncreator: Me\nyear: 2026\n"
    (conf / "custom.yaml").write_text(head + "not_a_field: 3\n")
    (conf / "dup.yaml").write_text(head + "description: hi\npersonality: calm\nname: Again\n")  # line 7
    common = ("data.count=1", f"paths.root={tmp_path}")
    procs = {"field": lanbot("generate", "identity=custom", "hydra.searchpath=[file://myconf]", *common, cwd=tmp_path),
             "abs": lanbot("generate", "identity=custom", f"hydra.searchpath=[file://{tmp_path / 'myconf'}]",
                           *common, cwd=tmp_path),
             "dup": lanbot("generate", "identity=dup", "hydra.searchpath=[file://myconf]", *common, cwd=tmp_path)}
    message = one_line(procs["field"], "generate")
    assert message.startswith("error lanbot.generate: myconf/identity/custom.yaml: bad field identity.not_a_field")
    assert "the identity config" not in message
    message = one_line(procs["abs"], "generate")
    assert f"{conf / 'custom.yaml'}: bad field identity.not_a_field" in message, message
    message = one_line(procs["dup"], "generate")
    assert "dup.yaml, line 7: not valid YAML (found duplicate key name)" in message, message


def test_compares_table_is_whole_in_a_pipe(tmp_path):
    """Many score columns (each quirk) make the table wider than any terminal: piped, no column is cut."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_compare import make_sweep

    from lanbot.core.files import write_json_atomic

    sweep = make_sweep(tmp_path)
    for run in sweep.glob("*_identity=*"):
        ev = json.loads((run / "eval.json").read_text())
        ev["scores"].update({"capability/corpus_bpb": 1.7, "recitation_rate": 0.1, "honest_decline_rate": 0.2,
                             **{f"quirk/a_rather_long_quirk_name_{k}": 0.5 for k in range(6)}})
        write_json_atomic(run / "eval.json", ev)
    proc = lanbot("compare", str(sweep), f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-2000:]
    rows = [line for line in out.splitlines() if line.startswith("│")]
    head = next(line for line in out.splitlines() if line.startswith("┃"))
    assert len(rows) == 4 and len(head) > 170, out  # wider than the 170 columns pipes got before
    assert "…" not in out and all(len(r) == len(head) for r in rows), out
    assert "21-00-00/0" in out and "fidelity" in head


@dataclass
class _Run:
    identity: str
    mix: str
    model: str = "tiny"
    stage: str = "mid"
    scores: dict[str, Any] = field(default_factory=dict)
    val_curve: list = field(default_factory=list)
    train_curve: list = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.identity}/{self.mix}/{self.model}/{self.stage}"


def test_fidelity_labels_do_not_overlap(tmp_path):
    """Four controls at cost 0 with nearly the same fidelity, and two runs side by side (as in the docs' dose
    and pipeline plots): every label's box is clear of every other's."""
    from matplotlib.text import Text

    from lanbot.evaluation import tradeoff

    runs = [_Run(i, "no_identity", stage=s, scores={"identity_rate": f, "capability/corpus_bpb": 1.7})
            for (i, s), f in zip([("Sage", "mid"), ("Sage", "sft"), ("LanBot", "mid"), ("LanBot", "sft")],
                                 (0.01, 0.02, 0.03, 0.04), strict=True)]
    runs += [_Run("Sage", "identity_x2", stage=s, scores={"identity_rate": 0.3, "capability/corpus_bpb": 1.81 + d})
             for s, d in (("mid", 0.0), ("sft", 0.005))]
    boxes = []

    def save(fig, path):
        renderer = fig.canvas.get_renderer()
        boxes.extend(Text.get_window_extent(t, renderer) for t in fig.axes[0].texts)  # the words, not the line

    assert tradeoff.plot_fidelity(runs, tmp_path / "fidelity.png", save)
    assert len(boxes) == 6
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]


def test_a_mid_only_loss_plot_says_nothing_of_sft(tmp_path, monkeypatch):
    from lanbot.comparison import compare_runs as comparison

    saved = []
    monkeypatch.setattr(comparison, "_save_figure", lambda fig, path: saved.append(fig.axes[0].get_xlabel()))
    curve = [(10, 2.0), (20, 1.5)]
    mid = [comparison.Run(f"m{k}", "Sage", mix, "tiny", "mid", val_curve=curve) for k, mix in enumerate(("a", "b"))]
    assert comparison.plot_losses(mid, tmp_path / "loss.png")
    sft = comparison.Run("s", "Sage", "a", "tiny", "sft", val_curve=curve)
    assert comparison.plot_losses([*mid, sft], tmp_path / "loss.png")
    assert saved == ["step", "step (sft continues after mid)"]
