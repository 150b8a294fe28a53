"""Does the trained model say who it is? `python -m lanbot.evaluate identity=sage`

Asks the held-out probes (lanbot/evaluation/probes.yaml, checked against the identity's training data), samples
`eval.samples` answers each with the calculator in the loop, and scores them: identity_rate (the name
said), creator_rate, wrong_identity_rate (another model's or identity's name claimed), distinct_2 and
distinct_answers (wording diversity per probe), limitation_honesty and calculator_accuracy. The scores go
to `<run folder>/eval.json`, to wandb (summary and a table of the answers) and to the terminal.

    python -m lanbot.evaluate identity=sage                     # the newest sft checkpoint of Sage
    python -m lanbot.evaluate identity=sage eval.stage=mid eval.samples=8
    python -m lanbot.evaluate identity=sage eval.checkpoint=outputs/checkpoints/sage/default/tiny/sft

The training app calls `evaluate_run` at the end of a run when `train.eval_at_end` is true.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

import lanbot.core.identity  # noqa: F401  (schema and `slug` resolver)
from lanbot.core import layout
from lanbot.core.conversation import render_parts
from lanbot.core.errors import LanbotError
from lanbot.core.files import write_json_atomic
from lanbot.core.identity import ModelIdentity, slug, to_identity
from lanbot.core.layout import EVAL_FILE
from lanbot.evaluation import scores as sc
from lanbot.evaluation.engine import Completion, Engine
from lanbot.evaluation.inference import check_meta, load_engine, resolve_checkpoint
from lanbot.evaluation.probes import Probe, check_overlap, identity_names, load_probes
from lanbot.training.tokenizer import render_for_completion

SCORES = tuple(sc.SCORES)  # the headline scores, in the order they are printed and logged


class EvaluationError(LanbotError, RuntimeError):
    """An evaluation that cannot run; the message says why and what to do."""


def sample_answers(engine: Engine, probes: list[Probe], ev: DictConfig | dict) -> dict[str, list[Completion]]:
    """`ev.samples` answers to every probe, sampled in one batch per probe (probe i with seed + i)."""
    answers = {}
    for i, probe in enumerate(probes):
        prompt = render_for_completion(engine.tok, probe.conversation())
        answers[probe.id] = engine.generate(
            prompt, num_samples=int(ev["samples"]), max_tokens=int(ev["max_tokens"]),
            temperature=float(ev["temperature"]), top_k=ev["top_k"], seed=int(ev["seed"]) + i)
    return answers


def _after_tool(answer: Completion) -> str:
    """The text written after the last tool output (the whole text if the tool was never called)."""
    last = max((i for i, p in enumerate(answer.parts) if p["type"] == "python_output"), default=-1)
    return " ".join(p["text"] for p in answer.parts[last + 1:] if p["type"] == "text")


def shown(answer: Completion) -> str:
    """The answer as a reader sees it, tool calls inline: `[calc 2+3 = 5]`."""
    return render_parts(answer.parts)


def score_answers(probes: list[Probe], answers: dict[str, list[Completion]], identity: ModelIdentity,
                  others: list[str], seen: dict[str, str], threshold: float = 0.5) -> dict[str, Any]:
    """Scores of held-out probes (`scores`), of probes seen in training (`seen_*`), per category,
    per probe, and one record per sampled answer."""
    asked_names = {p.id: [n for n in (*sc.OTHER_MODELS, *others) if sc.says_name(p.text, n)] for p in probes}
    records = []
    for probe in probes:
        for k, answer in enumerate(answers[probe.id]):
            text = answer.text
            rec = {"probe": probe.id, "category": probe.category, "question": probe.text, "sample": k,
                   "answer": shown(answer), "finished": answer.finished, "seen": probe.id in seen}
            if probe.arithmetic:
                rec.update(expected=probe.answer, used_tool=bool(answer.tool_calls),
                           correct=sc.numeric_match(_after_tool(answer), probe.answer))
            else:
                rec.update(says_name=sc.says_name(text, identity.name),
                           claims=sc.claimed_names(text, identity.name, others, asked_names[probe.id]))
                if "creator" in probe.asks:
                    rec["says_creator"] = sc.says_name(text, identity.creator)
                if "limitation" in probe.asks:
                    rec["owns_limitation"] = sc.owns_limitation(text, identity.limitations, threshold)
            records.append(rec)
    by_probe = {p.id: [r for r in records if r["probe"] == p.id] for p in probes}
    held = [p for p in probes if p.id not in seen]
    scores = _identity_scores([p for p in held if not p.arithmetic], by_probe, answers)
    math = [r for p in held if p.arithmetic for r in by_probe[p.id]]
    scores["calculator_accuracy"] = _mean(r["correct"] for r in math)
    scores["tool_use_rate"] = _mean(r["used_tool"] for r in math)
    scores["finished_rate"] = _mean(r["finished"] for p in held for r in by_probe[p.id])
    seen_identity = [p for p in probes if p.id in seen and not p.arithmetic]
    if seen_identity:
        seen_scores = _identity_scores(seen_identity, by_probe, answers)
        scores.update({f"seen_{k}": seen_scores[k] for k in ("identity_rate", "creator_rate", "wrong_identity_rate")})
    scores["probes_held_out"], scores["probes_seen"] = len(held), len(probes) - len(held)
    categories = sorted({p.category for p in probes if not p.arithmetic})
    per_category = {c: _identity_scores([p for p in held if p.category == c], by_probe, answers) for c in categories}
    per_probe = [{"id": p.id, "category": p.category, "text": p.text, "seen_in": seen.get(p.id),
                  **(_identity_scores([p], by_probe, answers) if not p.arithmetic else
                     {"calculator_accuracy": _mean(r["correct"] for r in by_probe[p.id]), "expected": p.answer})}
                 for p in probes]
    return {"scores": scores, "per_category": per_category, "per_probe": per_probe, "samples": records}


def _identity_scores(probes: list[Probe], by_probe: dict[str, list[dict]], answers: dict[str, list[Completion]]) -> dict:
    recs = [r for p in probes for r in by_probe[p.id]]
    texts = {p.id: [a.text for a in answers[p.id]] for p in probes}
    shares = [sc.distinct_share(t) for t in texts.values()]
    return {
        "identity_rate": _mean(r["says_name"] for r in recs),
        "creator_rate": _mean(r["says_creator"] for r in recs if "says_creator" in r),
        "wrong_identity_rate": _mean(bool(r["claims"]) for r in recs),
        "limitation_honesty": _mean(r["owns_limitation"] for r in recs if "owns_limitation" in r),
        "distinct_2": _mean(sc.distinct_2(t) for t in texts.values()),
        "distinct_answers": _mean(shares),
        "distinct_answers_min": min(shares) if shares else None,
    }


def _mean(values) -> float | None:
    values = [float(v) for v in values]
    return round(sum(values) / len(values), 4) if values else None


def probes_for(cfg: DictConfig, identity: ModelIdentity, checkpoint: Path | None = None) -> tuple[list[Probe], list[str], dict[str, str]]:
    """(probes, the other identities' names, {probe id: where training saw it}) under `eval.overlap`."""
    others = [n for n in identity_names() if n.lower() != identity.name.lower()]
    probes = load_probes(cfg.eval.probes, identity.name, others)
    policy = str(cfg.eval.overlap)
    if policy not in ("exclude", "fail", "skip"):
        raise EvaluationError(f"eval.overlap={policy!r}: use exclude, fail or skip")
    data_dir = layout.data_dir(cfg, checkpoint)
    seen = {} if policy == "skip" else check_overlap(probes, data_dir)
    if seen and policy == "fail":
        raise EvaluationError("probes found in the training data of " + str(data_dir) + ": "
                              + ", ".join(f"{k} ({v})" for k, v in seen.items())
                              + "; reword them in the probe file or set eval.overlap=exclude")
    return probes, others, seen


def evaluate_run(cfg: DictConfig, checkpoint: Path, run_dir: Path, tracker=None) -> dict:
    """Evaluate `checkpoint` for the configured identity; write eval.json to the run folder and beside the
    checkpoint, log to `tracker`, print the table, and return the scores."""
    start = time.time()
    identity = to_identity(cfg.identity)
    engine, meta = load_engine(cfg, checkpoint, str(cfg.eval.device))
    probes, others, seen = probes_for(cfg, identity, checkpoint)
    answers = sample_answers(engine, probes, cfg.eval)
    result = score_answers(probes, answers, identity, others, seen, float(cfg.eval.limitation_threshold))
    scores = result["scores"]
    scores["eval_seconds"] = round(time.time() - start, 1)
    report = {
        "identity": identity.name, "identity_slug": slug(identity.name), "checkpoint": str(checkpoint),
        "stage": meta.stage, "mix": meta.mix, "model": meta.model, "step": meta.step,
        "val_loss": meta.val_loss, "scores": scores, "overlaps": seen,
        "overlap_checked": str(cfg.eval.overlap) != "skip",
        "settings": {k: cfg.eval[k] for k in ("samples", "temperature", "top_k", "max_tokens", "seed")},
        **{k: result[k] for k in ("per_category", "per_probe", "samples")},
    }
    write_json_atomic(Path(run_dir) / EVAL_FILE, report)
    write_json_atomic(Path(checkpoint) / EVAL_FILE, report)  # the checkpoint carries its own scores (upload, compare)
    if tracker is not None:
        tracker.summary({f"eval/{k}": v for k, v in scores.items() if v is not None})
        tracker.table("eval/answers", ["probe", "category", "question", "sample", "answer", "name", "claims", "correct"],
                      [[r["probe"], r["category"], r["question"], r["sample"], r["answer"], r.get("says_name"),
                        ", ".join(r.get("claims", [])), r.get("correct")] for r in result["samples"]])
    print_report(report)
    return scores


def print_report(report: dict, console: Console | None = None) -> None:
    """The scores as rich tables: headline scores, then identity scores by probe category."""
    console = console or Console()
    s = report["scores"]
    table = Table(title=f"{report['identity']}: {report['checkpoint']} (step {report.get('step')})")
    for column in ("score", "held-out", "seen in training"):
        table.add_column(column, justify="right" if column != "score" else "left")
    for key in SCORES:
        table.add_row(key, _fmt(s.get(key)), _fmt(s.get(f"seen_{key}")))
    console.print(table)
    cats = Table(title=f"by category ({s['probes_held_out']} held-out probes, {s['probes_seen']} seen in training)")
    for column in ("category", "identity_rate", "creator_rate", "wrong_identity_rate", "distinct_answers"):
        cats.add_column(column)
    for name, values in report["per_category"].items():
        cats.add_row(name, *(_fmt(values.get(k)) for k in ("identity_rate", "creator_rate", "wrong_identity_rate",
                                                          "distinct_answers")))
    console.print(cats)
    if report["overlaps"]:
        console.print("seen in training (scored apart): "
                      + ", ".join(f"{k} ({v})" for k, v in report["overlaps"].items()), markup=False)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def evaluate_app(cfg: DictConfig, run_dir: Path) -> dict:
    """`python -m lanbot.evaluate`: the checkpoint of `eval.checkpoint` (or the newest of `eval.stage`)."""
    from lanbot.core.tracking import Tracker

    directory = resolve_checkpoint(cfg, cfg.eval.checkpoint, str(cfg.eval.stage))
    meta = layout.CheckpointMeta.read(directory)
    check_meta(cfg, directory, meta)  # refuse before a wandb run is opened
    tags = [slug(cfg.identity.name), str(meta.mix), str(meta.model), str(meta.stage)]
    with Tracker(cfg, run_dir, job_type="eval", tags=tags) as tracker:
        return evaluate_run(cfg, directory, run_dir, tracker)
