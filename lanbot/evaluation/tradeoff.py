"""Fidelity against capability cost, for lanbot.compare: one point per run, the no_identity control marked,
and per-quirk bars.

- fidelity: the mean of the run's identity_rate and each rule-checked quirk score on held-out tasks
  (`quirk/<kind>`): how much of the personality the model shows.
- capability cost: how much capability the identity took, against the control of the same identity, model and
  stage among the compared runs (or the run's own `*_delta_vs_control` from lanbot.evaluate when the control is
  not among them). Held-out corpus bpb (`capability/corpus_bpb`, from the base-model evaluation) is used when
  both have it, as the relative rise; else the drop in capability-probe accuracy (`capability/probe_accuracy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from lanbot.evaluation.control import CONTROL_MIX


class ScoredRun(Protocol):
    identity: str | None
    mix: str | None
    model: str | None
    stage: str | None
    scores: dict[str, Any]

    @property
    def label(self) -> str: ...


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def quirk_keys(runs: list[ScoredRun]) -> list[str]:
    """Every `quirk/<k>` and `trait/<k>` score of the runs (tasks, rule-checked), in first-seen order."""
    keys: list[str] = []
    for run in runs:
        keys += [k for k, v in run.scores.items() if k.startswith(("quirk/", "trait/")) and _num(v) is not None
                 and k not in keys]
    return keys


def fidelity(scores: dict[str, Any]) -> float | None:
    """Mean of identity_rate and the quirk scores; None when the run has none of them."""
    values = [_num(scores.get("identity_rate"))] + [_num(v) for k, v in scores.items() if k.startswith("quirk/")]
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def control_of(run: ScoredRun, runs: list[ScoredRun]) -> ScoredRun | None:
    """The compared run that is `run`'s control: same identity, model and stage, mix no_identity."""
    return next((r for r in runs if r.mix == CONTROL_MIX and (r.identity, r.model, r.stage)
                 == (run.identity, run.model, run.stage)), None)


def capability_cost(run: ScoredRun, runs: list[ScoredRun]) -> tuple[float | None, str]:
    """(cost, what it measures): positive = capability lost against the control; 0 for the control itself."""
    if run.mix == CONTROL_MIX:
        return 0.0, "control"
    base = control_of(run, runs)
    mine, theirs = run.scores, base.scores if base is not None else {}
    a, b = _num(mine.get("capability/corpus_bpb")), _num(theirs.get("capability/corpus_bpb"))
    if a is not None and b:
        return round(a / b - 1, 4), "corpus bpb rise vs control"
    rel = _num(mine.get("capability/corpus_bpb_rel_vs_control"))
    if rel is not None:
        return rel, "corpus bpb rise vs control"
    a, b = _num(mine.get("capability/probe_accuracy")), _num(theirs.get("capability/probe_accuracy"))
    if a is not None and b is not None:
        return round(b - a, 4), "capability-probe accuracy drop vs control"
    delta = _num(mine.get("capability/probe_accuracy_delta_vs_control"))
    if delta is not None:
        return -delta, "capability-probe accuracy drop vs control"
    return None, ""


def plot_fidelity(runs: list[ScoredRun], path: Path, save) -> bool:
    """Fidelity (y) against capability cost (x), one point per run; controls drawn as black stars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = []
    for run in runs:
        cost, what = capability_cost(run, runs)
        fid = fidelity(run.scores)
        if cost is not None and fid is not None:
            points.append((run, cost, fid, what))
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(7, 5))
    labels = []
    for run, cost, fid, _ in sorted(points, key=lambda p: (p[1], -p[2])):
        control = run.mix == CONTROL_MIX
        ax.scatter([cost], [fid], marker="*" if control else "o", s=160 if control else 50,
                   color="black" if control else None, zorder=3)
        labels.append(ax.annotate(run.label + (" (control)" if control else ""), (cost, fid), fontsize=7,
                                  xytext=(6, 4), textcoords="offset points", va="bottom",
                                  arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.5}))
    measures = sorted({w for *_, w in points if w != "control"})
    ax.axvline(0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("capability cost: " + (" / ".join(measures) or "vs control") + " (right = more lost)")
    ax.set_ylabel("fidelity: mean of identity_rate and each quirk")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("personality fidelity against capability cost")
    ax.grid(alpha=0.3)
    spread_labels(fig, labels)
    save(fig, path)
    plt.close(fig)
    return True


def plot_quirks(runs: list[ScoredRun], path: Path, save) -> bool:
    """Each quirk and trait score on held-out tasks, grouped bars per run (controls hatched)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = quirk_keys(runs)
    scored = [r for r in runs if any(_num(r.scores.get(k)) is not None for k in keys)]
    if not keys or not scored:
        return False
    width = 0.8 / len(scored)
    fig, ax = plt.subplots(figsize=(max(7, 1.4 * len(keys) + 2), 5))
    for j, run in enumerate(scored):
        xs = [i + (j - (len(scored) - 1) / 2) * width for i in range(len(keys))]
        values = [_num(run.scores.get(k)) or 0.0 for k in keys]
        ax.bar(xs, values, width=width, label=run.label, hatch="//" if run.mix == CONTROL_MIX else None)
    ax.set_xticks(range(len(keys)), [k.split("/", 1)[1] for k in keys], fontsize=8, rotation=20)
    ax.set_ylim(0, 1.25)
    ax.set_ylabel("share of held-out task answers")
    ax.set_title("each quirk and trait (rule checks), per run; hatched = no_identity control")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper center")
    save(fig, path)
    plt.close(fig)
    return True


def spread_labels(fig: Any, labels: list[Any], tries: int = 40) -> None:
    """Move each label up or down (a thin line back to its point) until it overlaps no label placed before it:
    runs of similar fidelity and cost (the controls, all at cost 0) would print their names over each other."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    text_box = lambda label: Text.get_window_extent(label, renderer)  # noqa: E731 (the text's, not its line's)
    placed: list[Any] = []
    for label in labels:
        dx, dy = label.xyann
        box = text_box(label)
        step = (box.height + 1) * 72 / fig.dpi  # one label's height, in the offset's points
        for k in range(tries):  # 0, +1, -1, +2, -2, ... heights away from where it was put
            shift = (k + 1) // 2 * (1 if k % 2 else -1) * step
            label.xyann = (dx, dy + shift)
            box = text_box(label)
            if not any(box.overlaps(other) for other in placed):
                break
        placed.append(box)
