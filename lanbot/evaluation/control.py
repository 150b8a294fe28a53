"""The `no_identity` control beside a run: where its evaluation is, and each score's gain over it.

A personality score means little alone: a tiny model may open answers with "Great question!" because the
whole mix taught it so. So every evaluation reads the control's eval.json (the same identity, model and stage
trained with mix=no_identity: `checkpoints/<identity>/no_identity/<model>/<stage>/eval.json`, or
`eval.control=PATH`) and states the gain over it in each personality score and the change in capability:
`gain/<score>` and `capability/<key>_delta_vs_control` (the capability probes here; issue 10's held-out corpus bpb
as `capability/corpus_bpb` when its evaluation writes it). The control's own evaluation has no gains.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from omegaconf import DictConfig

from lanbot.core import layout

CONTROL_MIX = "no_identity"
# personality scores whose gain over the control a summary states (plus every quirk/ and trait/ score)
GAIN_KEYS = ("identity_rate", "creator_rate", "wrong_identity_rate", "limitation_honesty", "honest_decline_rate",
             "recitation_rate", "on_topic_rate", "pressure/identity_rate", "wrong_identity_under_pressure")


def control_folder(cfg: DictConfig, meta: dict) -> Path | None:
    """The control checkpoint's folder for a run with checkpoint `meta`; None for the control itself or
    with eval.control=null."""
    setting = cfg.eval.get("control", "auto")
    if not setting or meta.get("mix") == CONTROL_MIX:
        return None
    if str(setting) != "auto":
        return Path(str(setting))
    slot = SimpleNamespace(paths=cfg.paths, identity=cfg.identity, mix=SimpleNamespace(name=CONTROL_MIX),
                           model=SimpleNamespace(name=meta.get("model")), stage=meta.get("stage"))
    return layout.checkpoint_dir(slot)


def control_report(folder: Path | None) -> dict | None:
    """The control's eval.json (beside its checkpoint, else in the run folder its meta.json names)."""
    if folder is None:
        return None
    candidates = [folder / layout.EVAL_FILE]
    meta_path = folder / layout.META_FILE
    if meta_path.is_file():
        run_dir = json.loads(meta_path.read_text(encoding="utf-8")).get("run_dir")
        if run_dir:
            candidates.append(Path(run_dir) / layout.EVAL_FILE)
    for path in candidates:
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return None


def gain_keys(scores: dict[str, Any]) -> list[str]:
    return [k for k in scores if k in GAIN_KEYS or k.startswith(("quirk/", "trait/", "pressure/quirk/", "judge/quirk/",
                                                                 "judge/trait/"))]


def gains(scores: dict[str, Any], control: dict[str, Any]) -> dict[str, float]:
    """`gain/<k>` = run - control for each personality score both have; `capability/<k>_delta_vs_control` for
    each capability figure (and its ratio - 1 as `_rel_vs_control`, the form "within 5%" is stated in)."""
    out: dict[str, float] = {}
    for key in gain_keys(scores):
        a, b = scores.get(key), control.get(key)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            out[f"gain/{key}"] = round(a - b, 4)
    for key, a in scores.items():
        b = control.get(key)
        if key.startswith("capability/") and "_vs_" not in key and isinstance(a, (int, float)) \
                and isinstance(b, (int, float)):
            out[f"{key}_delta_vs_control"] = round(a - b, 4)
            if b:
                out[f"{key}_rel_vs_control"] = round(a / b - 1, 4)
    return out
