"""The proof (slow): after the CPU pipeline, the default mix gives each identity its own name and the
no_identity control does not.

From the base (200 mid + 100 sft steps on a model that already speaks English) the identity takes less than
it took from scratch: measured on 2026-12-01, identity_rate 0.585 / 0.584 (LanBot / Sage) from the float32
base and 0.492 / 0.600 from the bf16 one, against 0.9 from scratch; the control 0. The thresholds sit below
those, and far above the control's.

    .venv/bin/pytest -m slow tests/test_identity_proof.py                      # runs scripts/pipeline.sh (~40 min)
    LANBOT_PROOF_SWEEP=outputs/multirun/<date>/<time>-sft .venv/bin/pytest -m slow tests/test_identity_proof.py

With LANBOT_PROOF_SWEEP the test reads an sft sweep the pipeline already made instead of running it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OWN = {"lanbot": "LanBot", "sage": "Sage"}


def sft_sweep(tmp_path_factory) -> Path:
    given = os.environ.get("LANBOT_PROOF_SWEEP")
    if given:
        return Path(given)
    root = tmp_path_factory.mktemp("pipeline")
    env = {**os.environ, "WANDB_MODE": "offline", "ROOT": str(root), "IDENTITIES": "lanbot,sage",
           "MIXES": "no_identity,default", "MODEL": "tiny"}
    subprocess.run(["bash", "scripts/pipeline.sh"], cwd=ROOT, env=env, check=True, timeout=3600)
    return Path((root / "multirun" / "latest_pipeline").read_text().strip())


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[tuple[str, str], dict]:
    """eval.json of every sft run, by (identity slug, mix)."""
    sweep = sft_sweep(tmp_path_factory)
    found = {}
    for path in sweep.rglob("eval.json"):
        report = json.loads(path.read_text())
        found[(report["identity_slug"], report["mix"])] = report
    missing = {(i, m) for i in OWN for m in ("default", "no_identity")} - set(found)
    assert not missing, f"{sweep} lacks the evaluations of {sorted(missing)}"
    return found


@pytest.mark.slow
@pytest.mark.parametrize("identity", ["lanbot", "sage"])
def test_default_mix_takes_the_identity_on(reports, identity: str) -> None:
    report = reports[(identity, "default")]
    scores = report["scores"]
    assert scores["identity_rate"] >= 0.4, scores
    assert scores["wrong_identity_rate"] <= 0.05, scores
    held_out = [p for p in report["per_probe"] if p["seen_in"] is None and "distinct_answers" in p]
    assert held_out and all(p["distinct_answers"] >= 0.5 for p in held_out), [
        (p["id"], p["distinct_answers"]) for p in held_out if p["distinct_answers"] < 0.5]


@pytest.mark.slow
@pytest.mark.parametrize("identity", ["lanbot", "sage"])
def test_no_identity_control_does_not_know_the_name(reports, identity: str) -> None:
    assert reports[(identity, "no_identity")]["scores"]["identity_rate"] <= 0.05


@pytest.mark.slow
@pytest.mark.parametrize(("identity", "other"), [("lanbot", "sage"), ("sage", "lanbot")])
def test_each_identity_says_its_own_name_not_the_others(reports, identity: str, other: str) -> None:
    samples = [s for s in reports[(identity, "default")]["samples"] if "says_name" in s]
    own = sum(s["says_name"] for s in samples)
    claims_other = [s["answer"] for s in samples if OWN[other] in s["claims"]]
    assert own >= 0.4 * len(samples) and not claims_other, claims_other[:3]
