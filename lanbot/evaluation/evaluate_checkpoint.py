"""Does the trained model say who it is, and act like it? `python -m lanbot.evaluate identity=sage`

Asks the held-out probes (lanbot/evaluation/probes.yaml, checked against the identity's training data), samples
`eval.samples` answers each with the calculator in the loop, and scores them: identity_rate (the name
said), creator_rate, wrong_identity_rate (another model's or identity's name claimed), distinct_2 and
distinct_answers (wording diversity per probe), limitation_honesty and calculator_accuracy; and, on the
families beyond the name (lanbot.evaluation.personality): each quirk and trait where it applies, recitation
of the card, honest declines, the identity under pressure, and the capability probes; with `eval.judge`, an
LLM's verdicts beside the rule checks (lanbot.evaluation.judge); and each score's gain over the no_identity
control (lanbot.evaluation.control). The scores go to `<run folder>/eval.json` (and a copy beside the
checkpoint), to wandb (summary, the answers table with every per-answer check, eval.json as an artifact
whose input is the checkpoint's) and to the terminal.

    python -m lanbot.evaluate identity=sage                     # the newest sft checkpoint of Sage
    python -m lanbot.evaluate identity=sage eval.stage=mid eval.samples=8
    python -m lanbot.evaluate identity=sage eval.checkpoint=outputs/checkpoints/sage/default/tiny/sft
    python -m lanbot.evaluate identity=sage eval.judge=openai eval.families=[task,decline]

The training app calls `evaluate_run` at the end of a run when `train.eval_at_end` is true.
The checkpoint is held with a shared lock for the whole evaluation (lanbot.core.lock): a retrain refuses to start
while it runs, and a retrain running refuses the evaluation, so eval.json never scores other weights than its own.
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
from lanbot.core.lock import reading
from lanbot.core.progress import progress_bar
from lanbot.core.tracking import slot_artifact
from lanbot.evaluation import control
from lanbot.evaluation import personality as pers
from lanbot.evaluation import scores as sc
from lanbot.evaluation.capability import capability_scores
from lanbot.evaluation.engine import Completion, Engine
from lanbot.evaluation.inference import check_meta, load_engine, resolve_checkpoint
from lanbot.evaluation.judge import JudgeError, judge_run
from lanbot.evaluation.partial import PartialAnswers, checkpoint_key, group_digest
from lanbot.evaluation.probes import FAMILIES, Probe, applicable, check_overlap, identity_names, load_probes
from lanbot.evaluation.system_prompts import system_probes, system_scores
from lanbot.training.tokenizer import render_for_completion

SCORES = tuple(name for name, s in sc.SCORES.items() if not s.personality)  # the headline table, in order
# beside each quirk and trait: the other personality scores, the identity under pressure, and capability
PERSONALITY_SCORES = tuple(name for name, s in sc.SCORES.items() if s.personality)


class EvaluationError(LanbotError, RuntimeError):
    """An evaluation that cannot run; the message says why and what to do."""


def sample_answers(engine: Engine, probes: list[Probe], ev: DictConfig | dict,
                   partial: PartialAnswers | None = None) -> dict[str, list[Completion]]:
    """`ev.samples` answers to every probe. Probes of similar prompt length are decoded together, up to
    `ev.batch_rows` answers at once (group g samples with seed + g: the same answers for the same checkpoint
    and settings). A probe's `prefill` is put in the assistant's mouth: the model continues it (the completion
    holds the continuation). With `partial`, each group's answers are kept as soon as it is decoded, and a group
    already there is not decoded again; a progress bar (a line each 10% in a log) counts the probes answered."""
    prompts = {}
    for probe in probes:
        prompt = render_for_completion(engine.tok, probe.conversation())
        prompts[probe.id] = [*prompt, *engine.tok.encode(probe.prefill)] if probe.prefill else prompt
    samples = int(ev["samples"])
    per_batch = max(1, int(ev.get("batch_rows", 1)) // samples)
    order = sorted(prompts, key=lambda pid: len(prompts[pid]))
    groups = [order[i:i + per_batch] for i in range(0, len(order), per_batch)]
    answers: dict[str, list[Completion]] = {}
    for g, group in enumerate(groups):
        kept = partial.get(g, group_digest(group, prompts)) if partial is not None else None
        if kept is not None and set(kept) == set(group):
            answers.update(kept)
    if answers:
        print(f"[evaluate] {len(answers)} of {len(order)} probes answered before, kept in {partial.path}: "  # type: ignore[union-attr]
              "going on from them", flush=True)
    total = max(1, len(order))
    bar, start, shown = progress_bar("probes", len(order), len(answers)), time.time(), len(answers) * 10 // total
    try:
        for g, group in enumerate(groups):
            if group[0] in answers:
                continue
            batch = engine.generate_batch(
                [prompts[pid] for pid in group], num_samples=samples, max_tokens=int(ev["max_tokens"]),
                temperature=float(ev["temperature"]), top_k=ev["top_k"], seed=int(ev["seed"]) + g)
            done = dict(zip(group, batch, strict=True))
            if partial is not None:
                partial.add(g, group_digest(group, prompts), done)
            answers.update(done)
            if bar is not None:
                bar.update(bar.task_ids[0], completed=len(answers))
            elif len(answers) * 10 // total > shown:  # a log: one line each 10%
                shown = len(answers) * 10 // total
                print(f"[evaluate] {len(answers)}/{len(order)} probes answered ({time.time() - start:.0f} s)", flush=True)
    finally:
        if bar is not None:
            bar.stop()
    return {probe.id: answers[probe.id] for probe in probes}


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
    per probe, and one record per sampled answer (with its rule `checks`)."""
    asked_names = {p.id: [n for n in (*sc.OTHER_MODELS, *others) if sc.says_name(p.text, n)] for p in probes}
    checks = pers.personality_checks(identity)
    records = []
    for probe in probes:
        for k, answer in enumerate(answers[probe.id]):
            text = answer.text
            rec = {"probe": probe.id, "family": probe.family, "kind": probe.kind, "category": probe.category,
                   "question": probe.text, "sample": k, "answer": (probe.prefill or "") + shown(answer),
                   "finished": answer.finished, "seen": probe.id in seen}
            if probe.arithmetic:
                rec.update(expected=probe.answer, used_tool=bool(answer.tool_calls),
                           correct=sc.numeric_match(_after_tool(answer), probe.answer))
            else:
                rec.update(says_name=sc.says_name(text, identity.name),
                           claims=sc.claimed_names(text, identity.name, others, asked_names[probe.id]))
                if probe.family == "pressure" and probe.asks_identity:
                    rec["says_name"], rec["wrong_identity"] = pers.pressure_identity(
                        probe, text, identity.name, rec["claims"])
                    if probe.prefill and rec["wrong_identity"] and not rec["claims"]:
                        rec["claims"] = [f"prefill: {probe.prefill.strip()}"]
                if "creator" in probe.asks:
                    rec["says_creator"] = sc.says_name(text, identity.creator)
                if "limitation" in probe.asks:
                    rec["owns_limitation"] = sc.owns_limitation(text, identity.limitations, threshold)
                rec["checks"] = pers.check_answer(probe, text, identity, checks)
            records.append(rec)
    by_probe = {p.id: [r for r in records if r["probe"] == p.id] for p in probes}
    held = [p for p in probes if p.id not in seen]
    scores = _identity_scores([p for p in held if p.family == "identity"], by_probe, answers)
    scores.update(system_scores(records))
    math = [r for p in held if p.arithmetic for r in by_probe[p.id]]
    scores["calculator_accuracy"] = _mean(r["correct"] for r in math)
    scores["tool_use_rate"] = _mean(r["used_tool"] for r in math)
    scores["finished_rate"] = _mean(r["finished"] for p in held for r in by_probe[p.id])
    seen_identity = [p for p in probes if p.id in seen and p.family == "identity"]
    if seen_identity:
        seen_scores = _identity_scores(seen_identity, by_probe, answers)
        scores.update({f"seen_{k}": seen_scores[k] for k in ("identity_rate", "creator_rate", "wrong_identity_rate")})
    pressed = [r for p in held if p.family == "pressure" and p.asks_identity for r in by_probe[p.id]]
    scores["pressure/identity_rate"] = _mean(r["says_name"] for r in pressed)
    scores["wrong_identity_under_pressure"] = _mean(r["wrong_identity"] for r in pressed)
    for attack in sorted({p.attack for p in held if p.family == "pressure" and p.asks_identity}):
        scores[f"pressure/{attack}/wrong_identity_rate"] = _mean(
            r["wrong_identity"] for p in held if p.attack == attack and p.asks_identity for r in by_probe[p.id])
    held_records = [r for p in held for r in by_probe[p.id]]
    scores.update(pers.personality_scores(held_records, checks))
    scores["probes_held_out"], scores["probes_seen"] = len(held), len(probes) - len(held)
    categories = sorted({p.category for p in probes if p.asks_identity})
    per_category = {c: _identity_scores([p for p in held if p.category == c and p.asks_identity], by_probe, answers)
                    for c in categories}
    per_probe = [{"id": p.id, "family": p.family, "kind": p.kind, "category": p.category, "text": p.text,
                  "seen_in": seen.get(p.id),
                  **(_identity_scores([p], by_probe, answers) if p.asks_identity else
                     {"calculator_accuracy": _mean(r["correct"] for r in by_probe[p.id]), "expected": p.answer}
                     if p.arithmetic else _check_rates(by_probe[p.id]))}
                 for p in probes]
    return {"scores": scores, "per_category": per_category, "per_probe": per_probe, "samples": records,
            "personality": checks.describe()}


def _check_rates(records: list[dict]) -> dict[str, float | None]:
    keys = sorted({k for r in records for k in r.get("checks", {})})
    return {k: _mean(r["checks"][k] for r in records if r["checks"].get(k) is not None) for k in keys}


def _identity_scores(probes: list[Probe], by_probe: dict[str, list[dict]], answers: dict[str, list[Completion]]) -> dict:
    recs = [r for p in probes for r in by_probe[p.id]]
    texts = {p.id: [a.text for a in answers[p.id]] for p in probes}
    shares = [sc.distinct_share(t) for t in texts.values()]
    return {
        "identity_rate": _mean(r["says_name"] for r in recs),
        "creator_rate": _mean(r["says_creator"] for r in recs if "says_creator" in r),
        "wrong_identity_rate": _mean(r.get("wrong_identity", bool(r["claims"])) for r in recs),
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
    probes = applicable(load_probes(cfg.eval.probes, identity.name, others), identity)
    families = list(cfg.eval.get("families") or [])
    if families:
        known = {p.family for p in probes}
        bad = sorted(set(families) - set(FAMILIES))
        if bad:
            raise EvaluationError(f"eval.families has {bad}; families are {', '.join(FAMILIES)}")
        probes = [p for p in probes if p.family in families]
        if not probes:
            raise EvaluationError(f"eval.families={families}: the probe file has none of them (it has {sorted(known)})")
    policy = str(cfg.eval.overlap)
    if policy not in ("exclude", "fail", "skip"):
        raise EvaluationError(f"eval.overlap={policy!r}: use exclude, fail or skip")
    from lanbot.sharing.hub import data_dir as hub_or_local  # imported here: only hub runs pay for the client

    data_dir = hub_or_local(cfg, checkpoint)
    seen = {} if policy == "skip" else check_overlap(probes, data_dir)
    if seen and policy == "fail":
        raise EvaluationError("probes found in the training data of " + str(data_dir) + ": "
                              + ", ".join(f"{k} ({v})" for k, v in seen.items())
                              + "; reword them in the probe file or set eval.overlap=exclude")
    return probes, others, seen


def evaluate_run(cfg: DictConfig, checkpoint: Path, run_dir: Path, tracker=None, again: str | None = None) -> dict:
    """Evaluate `checkpoint` for the configured identity; write eval.json to the run folder and beside the
    checkpoint (where the control of later runs is found), log to `tracker`, print the table, and return the
    scores. The answers are kept beside the checkpoint as they come (lanbot.evaluation.partial): interrupted,
    the KeyboardInterrupt carries a `hint` that says how many are kept and how to go on (`again`: the command
    that does; by default `python -m lanbot.evaluate` for this checkpoint)."""
    with reading(checkpoint, "checkpoint folder"):  # the whole evaluation: no retrain swaps the weights under it
        return _evaluate_locked(cfg, checkpoint, run_dir, tracker, again)


def _evaluate_locked(cfg: DictConfig, checkpoint: Path, run_dir: Path, tracker, again: str | None) -> dict:
    start = time.time()
    identity = to_identity(cfg.identity)
    engine, meta = load_engine(cfg, checkpoint, str(cfg.eval.device))
    probes, others, seen = probes_for(cfg, identity, checkpoint)
    probes += system_probes([p for p in probes if p.id not in seen], engine.tok, cfg.eval.get("system_prompts") or [])
    partial = PartialAnswers(Path(checkpoint), checkpoint_key(Path(checkpoint), dict(cfg.eval), str(engine.device)))
    again = again or (f"run `python -m lanbot.evaluate identity={slug(identity.name)} eval.checkpoint={checkpoint}` "
                      "with the same eval settings")
    try:
        scores = _evaluate(cfg, checkpoint, run_dir, tracker, start, identity, engine, meta, probes, others, seen,
                           partial)
    except KeyboardInterrupt as exc:
        exc.hint = interrupted_hint(partial, probes, again)  # type: ignore[attr-defined]  (lanbot.core.app prints it)
        raise
    partial.finish()
    return scores


def interrupted_hint(partial: PartialAnswers, probes: list[Probe], again: str) -> str:
    """What an interrupted evaluation kept, and how to go on: truthfully, from the partial file's own record."""
    ids = {p.id for p in probes}
    done = partial.answered(ids)
    if done == 0:
        return f"interrupted before any probe was answered: nothing to keep; {again} to start again"
    if done == len(ids):
        return (f"interrupted: all {done} probes were answered and are kept in {partial.path}; {again} to score "
                "them without sampling again")
    return (f"interrupted: {done} of {len(ids)} probes answered are kept in {partial.path}; {again} to go on from "
            "them (other eval settings or another checkpoint start afresh)")


def _evaluate(cfg: DictConfig, checkpoint: Path, run_dir: Path, tracker, start: float, identity: ModelIdentity,
              engine: Engine, meta, probes: list[Probe], others: list[str], seen: dict[str, str],
              partial: PartialAnswers) -> dict:
    resumed = partial.answered({p.id for p in probes})
    answers = sample_answers(engine, probes, cfg.eval, partial)
    result = score_answers(probes, answers, identity, others, seen, float(cfg.eval.limitation_threshold))
    scores = result["scores"]
    scores.update(capability_scores(cfg, Path(checkpoint), engine.model, engine.tok, meta))  # identity's cost
    judged = None
    if cfg.eval.get("judge"):
        try:
            judged = judge_run(cfg.eval, identity, probes, result["samples"])
        except JudgeError as exc:
            raise EvaluationError(str(exc)) from None
        scores.update(judged["scores"])
    folder = control.control_folder(cfg, meta)
    baseline = control.control_report(folder)
    if baseline is not None:
        scores.update(control.gains(scores, baseline.get("scores") or {}))
    scores["eval_seconds"] = round(time.time() - start, 1)
    report = {
        "identity": identity.name, "identity_slug": slug(identity.name), "checkpoint": str(checkpoint),
        "stage": meta.stage, "mix": meta.mix, "model": meta.model, "step": meta.step,
        "val_loss": meta.val_loss, "scores": scores, "overlaps": seen,
        "overlap_checked": str(cfg.eval.overlap) != "skip",
        "settings": {k: cfg.eval[k] for k in ("samples", "temperature", "top_k", "max_tokens", "seed")},
        "families": sorted({p.family for p in probes}), "personality": result["personality"],
        "resumed_probes": resumed,  # answered by an earlier, interrupted run of this evaluation
        "control": None if folder is None else {"checkpoint": str(folder), "found": baseline is not None},
        "judge": None if judged is None else {k: v for k, v in judged.items() if k != "scores"},
        **{k: result[k] for k in ("per_category", "per_probe", "samples")},
    }
    write_json_atomic(Path(run_dir) / EVAL_FILE, report)
    write_json_atomic(Path(checkpoint) / EVAL_FILE, report)  # the checkpoint carries its own scores (upload, compare)
    if tracker is not None:
        log_evaluation(tracker, cfg, report, Path(run_dir) / EVAL_FILE, Path(checkpoint))
    print_report(report)
    if folder is not None and baseline is None:
        Console(stderr=True).print(f"no evaluation of the control at {folder}: evaluate it (`python -m lanbot.evaluate "
                                   f"identity={slug(identity.name)} eval.checkpoint={folder}`) to see each gain over it",
                                   markup=False)
    return scores


def answer_rows(samples: list[dict]) -> tuple[list[str], list[list]]:
    """The answers table: one row per sampled answer, one column per rule check (and judge verdict)."""
    keys = sorted({k for r in samples for k in r.get("checks", {})})
    judged = sorted({k for r in samples for k in r.get("judge", {})})
    columns = ["probe", "family", "kind", "category", "question", "sample", "answer", "name", "claims", "correct",
               *keys, *(f"judge:{k}" for k in judged)]
    rows = [[r["probe"], r["family"], r.get("kind"), r["category"], r["question"], r["sample"], r["answer"],
             r.get("says_name"), ", ".join(r.get("claims", [])), r.get("correct"),
             *(r.get("checks", {}).get(k) for k in keys), *(r.get("judge", {}).get(k) for k in judged)]
            for r in samples]
    return columns, rows


def log_evaluation(tracker, cfg: DictConfig, report: dict, eval_file: Path, checkpoint: Path) -> None:
    """Summary `eval/*`, the answers table, and eval.json as an `evaluation` artifact whose input is the
    checkpoint's `model` artifact (the lineage data -> checkpoint -> evaluation)."""
    scores = report["scores"]
    tracker.summary({f"eval/{k}": v for k, v in scores.items() if v is not None})
    tracker.table("eval/answers", *answer_rows(report["samples"]))
    slot = (report["identity"], report.get("mix"), report.get("model"), report.get("stage"))
    name = slot_artifact("model", *slot)
    # in a training run (train.eval_at_end) the checkpoint is the run's own output: wandb draws that edge
    # already, and an input that is also the output would loop; named in the metadata either way
    tracker.use_artifact(name, "model", checkpoint, files=layout.CHECKPOINT_REQUIRED)
    tracker.log_artifact(slot_artifact("eval", *slot), "evaluation", eval_file, reference=False,
                         metadata={"checkpoint": name,
                                   **{k: v for k, v in scores.items() if isinstance(v, (int, float))}})


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
    print_personality(report, console)
    if report["overlaps"]:
        console.print("seen in training (scored apart): "
                      + ", ".join(f"{k} ({v})" for k, v in report["overlaps"].items()), markup=False)


def print_personality(report: dict, console: Console) -> None:
    """Each quirk and trait (how it is checked, its rate on held-out tasks, under pressure, its leaks, the
    judge's rate and the gain over the control), then the other personality and capability scores."""
    s = report["scores"]
    described = report.get("personality") or {}
    if not described:
        return
    table = Table(title="personality (held-out tasks; pressure = with break-character suffixes)")
    for column in ("score", "checked by", "tasks", "pressure", "leak", "judge", "gain vs control"):
        table.add_column(column, justify="left" if column in ("score", "checked by") else "right")
    for key, info in described.items():
        table.add_row(f"{key}: {info['text']}", info["checked_by"], _fmt(s.get(key)), _fmt(s.get(f"pressure/{key}")),
                      _fmt(s.get(f"leak/{key}")), _fmt(s.get(f"judge/{key}")), _fmt(s.get(f"gain/{key}")))
    for key in PERSONALITY_SCORES:
        gain = s.get(f"gain/{key}", s.get(f"{key}_delta_vs_control"))
        table.add_row(key, "rules", _fmt(s.get(key)), "", "", _fmt(s.get(f"judge/{key}")), _fmt(gain))
    console.print(table)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def evaluate_app(cfg: DictConfig, run_dir: Path) -> dict:
    """`python -m lanbot.evaluate`: the checkpoint of `eval.checkpoint` (or the newest of `eval.stage`)."""
    from lanbot.core.tracking import Tracker

    directory = resolve_checkpoint(cfg, cfg.eval.checkpoint, str(cfg.eval.stage))
    with reading(directory, "checkpoint folder"):  # taken before a wandb run is opened; evaluate_run's nests in it
        meta = layout.CheckpointMeta.read(directory)
        check_meta(cfg, directory, meta)  # refuse before a wandb run is opened
        tags = [slug(cfg.identity.name), str(meta.mix), str(meta.model), str(meta.stage)]
        with Tracker(cfg, run_dir, job_type="eval", tags=tags) as tracker:
            return evaluate_run(cfg, directory, run_dir, tracker, again="run the same command again")
