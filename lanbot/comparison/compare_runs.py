"""Runs side by side: `python -m lanbot.compare PATH [PATH...]`

Reads run folders (a training or evaluation run's `.hydra/config.yaml`, `metrics.jsonl`, `summary.json`,
`eval.json`; a sweep folder stands for every run folder below it) and shows one row per run: identity, mix,
model, stage, final val loss, the evaluation scores (with the personality families: fidelity, wrong identity
under pressure, recitation, honest declines, capability and its cost against the no_identity control) and run
time, sorted by `compare.sort`. Saves `loss.png` (every run's loss curve on one chart), `scores.png` (scores as
grouped bars by identity and mix), `fidelity.png` (fidelity against capability cost, one point per run, the
control marked), `quirks.png` (each quirk and trait per run) and `report.md` to `compare.out` (default
`<first path>/compare`). Works offline; with `compare.source=wandb` the same rows come from the wandb API
(config, summary with every per-quirk score and gain, history, group).

    python -m lanbot.compare outputs/multirun/2026-11-24/21-00-00
    python -m lanbot.compare outputs/multirun/A outputs/multirun/B compare.sort=wrong_identity_rate
    python -m lanbot.compare compare.source=wandb compare.group=2026-11-24-21-00-00 compare.out=reports/sweep
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

import lanbot.core.identity  # noqa: F401  (schema and `slug` resolver)
from lanbot.core.errors import LanbotError
from lanbot.core.files import atomic_path, write_text_atomic
from lanbot.core.layout import (
    ERROR_FILE,
    EVAL_FILE,
    HYDRA_CONFIG,
    METRICS_FILE,
    REPORT_FILE,
    RUN_FILES,
    SUMMARY_FILE,
)
from lanbot.evaluation import tradeoff
from lanbot.evaluation.scores import SCORES

SCORE_COLUMNS = tuple(name for name, s in SCORES.items() if s.compared)  # lanbot.evaluation.scores owns them
# shown where any compared run has them: fidelity and capability cost (lanbot.evaluation.tradeoff) and the
# personality scores of lanbot.evaluate's families
PERSONALITY_COLUMNS = ("fidelity", "wrong_identity_under_pressure", "recitation_rate", "honest_decline_rate",
                       "capability/probe_accuracy", "capability_cost")
LOWER_IS_BETTER = ({"val_loss", "run_seconds", "capability_cost"}
                   | {name for name, s in SCORES.items() if s.lower_is_better})
RATE_COLUMNS = tuple(k for k in SCORE_COLUMNS if not k.startswith("capability/"))  # the 0..1 bars of scores.png


class CompareError(LanbotError, ValueError):
    """Nothing to compare, or a setting that cannot work; the message says what was expected."""


class UnreadableRun(CompareError):
    """One run folder whose files cannot be read; compare skips it, names it, and goes on with the others."""


HYDRA_FILE = Path(".hydra") / "hydra.yaml"  # Hydra's own record of the run: hydra.job.name is the app
TRAINING_APPS = ("train", "evaluate")  # the apps whose mix and model describe a checkpoint; other rows show the app


@dataclass
class Run:
    """One run's row and curves."""

    name: str
    identity: str | None = None
    mix: str | None = None
    model: str | None = None
    stage: str | None = None
    val_loss: float | None = None
    run_seconds: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    val_curve: list[tuple[int, float]] = field(default_factory=list)
    train_curve: list[tuple[int, float]] = field(default_factory=list)
    error: str | None = None  # a sweep job that stopped on something to fix: its one line (error.txt)

    def row(self) -> dict[str, Any]:
        return {"run": self.name, "identity": self.identity, "mix": self.mix, "model": self.model,
                "stage": self.stage, "val_loss": self.val_loss,
                **{k: self.scores.get(k) for k in SCORE_COLUMNS}, "run_seconds": self.run_seconds}

    @property
    def label(self) -> str:
        return "/".join(str(x) for x in (self.identity, self.mix, self.model, self.stage) if x is not None)


# -- reading ---------------------------------------------------------------------------------------------


def is_run_folder(path: Path) -> bool:
    return (path / HYDRA_CONFIG).is_file() and any((path / f).is_file() for f in RUN_FILES)


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Every run folder among `paths` and below them (a sweep folder holds one per job)."""
    if not paths:
        raise CompareError("no paths given: `python -m lanbot.compare outputs/multirun/<date>/<time>` (a sweep "
                           "folder) or run folders, or compare.source=wandb")
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CompareError(f"{path} does not exist: give a run folder or a sweep folder (outputs/multirun/...)")
        candidates = [path] if is_run_folder(path) else sorted(p.parent.parent for p in path.rglob(".hydra/config.yaml"))
        runs = [p for p in candidates if is_run_folder(p)]
        if not runs:
            raise CompareError(
                f"no run folders in {path}: expected folders holding .hydra/config.yaml and at least one of "
                f"{', '.join(RUN_FILES)}, as `python -m lanbot.train -m ...` writes under outputs/multirun/<date>/<time>/")
        found.extend(r for r in runs if r not in found)
    return found


def find_named_runs(paths: list[str | Path]) -> list[tuple[Path, str]]:
    """(run folder, short name) of every run among `paths`."""
    named = []
    for raw in paths:
        given = Path(raw)
        named += [(f, run_name(f, given)) for f in find_runs([given]) if f not in [n[0] for n in named]]
    return named


def _load_json(path: Path) -> dict:
    """A JSON object from `path` ({} if there is none); anything else is an UnreadableRun naming the file."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnreadableRun(f"{path.name} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UnreadableRun(f"{path.name} holds a {type(data).__name__}, not a JSON object")
    return data


def _number(value: Any, where: str) -> float | None:
    """A score, loss or time: a number or null; a string or a list would break the table and the plots."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise UnreadableRun(f"{where} is {value!r}, not a number")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _get(tree: dict, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def read_run(folder: Path, name: str | None = None) -> Run:
    """A run from its folder; eval.json's checkpoint facts win over the app's config (an evaluation run).

    A file that is not what its app writes (not JSON, not an object, a score that is no number, a metrics line
    in the middle that cannot be read) raises UnreadableRun, naming the file and the problem."""
    try:
        return _read_run(folder, name)
    except UnreadableRun:
        raise
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UnreadableRun(f"cannot read it ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None


def _read_run(folder: Path, name: str | None) -> Run:
    config = yaml.safe_load((folder / HYDRA_CONFIG).read_text(encoding="utf-8")) or {}
    if not isinstance(config, dict):
        raise UnreadableRun(f"{HYDRA_CONFIG} holds a {type(config).__name__}, not a config")
    summary, report = _load_json(folder / SUMMARY_FILE), _load_json(folder / EVAL_FILE)
    val_curve, train_curve, first, last = read_metrics(folder / METRICS_FILE)
    scores = report.get("scores") or {k[5:]: v for k, v in summary.items() if k.startswith("eval/")}
    if not isinstance(scores, dict):
        raise UnreadableRun(f"{EVAL_FILE}: scores is a {type(scores).__name__}, not an object")
    scores = {str(k): _number(v, f"score {k}") for k, v in scores.items()}
    seconds = _number(summary.get("run_seconds"), f"{SUMMARY_FILE}: run_seconds") or scores.get("eval_seconds")
    if seconds is None and first is not None and last is not None:
        seconds = round(last - first, 1)
    val_loss = _number(summary.get("val/loss", report.get("val_loss")), "val/loss")
    if val_loss is None and val_curve:
        val_loss = val_curve[-1][1]
    app = run_app_name(folder, summary)
    trained = app in TRAINING_APPS
    return Run(name=name or folder.name, identity=_text(report.get("identity") or _get(config, "identity.name")),
               mix=_text(report.get("mix") or _get(config, "mix.name")) if trained else None,
               model=_text(report.get("model") or _get(config, "model.name")) if trained else None,
               stage=_text(report.get("stage") or config.get("stage")) if trained else app, val_loss=val_loss,
               run_seconds=seconds, scores=scores, val_curve=val_curve, train_curve=train_curve,
               error=_error_line(folder / ERROR_FILE))


def _error_line(path: Path, limit: int = 500) -> str | None:
    """The first line of a stopped job's error.txt, cut to `limit` characters; None where the job did not stop."""
    if not path.is_file():
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        line = f.readline(limit + 1).strip()
    return line[:limit] + ("..." if len(line) > limit else "")


def read_metrics(path: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]], float | None, float | None]:
    """(val curve, train curve, first time, last time) of metrics.jsonl. A killed run may leave its last line
    half-written, which is passed over; any other line that is not a row of numbers is an UnreadableRun."""
    val_curve: list[tuple[int, float]] = []
    train_curve: list[tuple[int, float]] = []
    first = last = None
    if not path.is_file():
        return val_curve, train_curve, first, last
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue  # a half-written last line of a killed run
            raise UnreadableRun(f"{path.name} line {number} is not valid JSON") from None
        if not isinstance(row, dict):
            raise UnreadableRun(f"{path.name} line {number} holds a {type(row).__name__}, not an object")
        where = f"{path.name} line {number}"
        time_ = _number(row.get("time"), f"{where}: time")
        first = first if first is not None else time_
        last = time_ if time_ is not None else last
        step = _number(row.get("step"), f"{where}: step")
        if step is None:
            continue
        for key, curve in (("val/loss", val_curve), ("train/loss", train_curve)):
            value = _number(row.get(key), f"{where}: {key}")
            if value is not None:
                curve.append((int(step), float(value)))
    return val_curve, train_curve, first, last


def run_app_name(folder: Path, summary: dict) -> str:
    """The app that made the run: Hydra's job name in .hydra/hydra.yaml (`<time>_<app>` folders); a folder of an
    older lanbot, whose every job was named `app`, is a generate run if its summary counts conversations."""
    name = None
    if (folder / HYDRA_FILE).is_file():
        hydra_cfg = yaml.safe_load((folder / HYDRA_FILE).read_text(encoding="utf-8")) or {}
        name = _get(hydra_cfg, "hydra.job.name") if isinstance(hydra_cfg, dict) else None
    if isinstance(name, str) and name != "app":
        return name
    return "generate" if any(str(k).startswith("counts/") for k in summary) else "train"


def run_name(folder: Path, given: Path) -> str:
    """A short name: `<sweep folder>/<job number>` for a sweep's job, the folder's name for a run."""
    if folder == given:
        return folder.name
    job = folder.relative_to(given).parts[0].split("_", 1)[0]
    return f"{given.name}/{job}"


def wandb_query(compare: DictConfig | dict) -> tuple[str, dict]:
    """(project path, filters) for wandb.Api().runs: the project (under its entity), the sweep's group,
    and any further filters of compare.filters."""
    project = str(compare.get("project") or "lanbot")
    path = f"{compare['entity']}/{project}" if compare.get("entity") else project
    filters: dict[str, Any] = {}
    if compare.get("group"):
        filters["group"] = str(compare["group"])
    extra = compare.get("filters") or {}
    filters.update(OmegaConf.to_container(extra) if isinstance(extra, DictConfig) else dict(extra))
    return path, filters


def run_from_wandb(run: Any) -> Run:
    """A Run from a wandb API run (its config, summary and history)."""
    config, summary = dict(run.config), dict(run.summary)
    val_curve, train_curve = [], []
    for row in run.scan_history(keys=["_step", "val/loss"]):
        val_curve.append((int(row["_step"]), float(row["val/loss"])))
    for row in run.scan_history(keys=["_step", "train/loss"]):
        train_curve.append((int(row["_step"]), float(row["train/loss"])))
    return Run(name=f"{run.group or ''}/{run.name}".strip("/"), identity=_get(config, "identity.name"),
               mix=_get(config, "mix.name"), model=_get(config, "model.name"), stage=config.get("stage"),
               val_loss=summary.get("val/loss"), run_seconds=summary.get("run_seconds") or summary.get("eval/eval_seconds"),
               scores={k[5:]: v for k, v in summary.items() if k.startswith("eval/")},
               val_curve=val_curve, train_curve=train_curve)


def _is_generate(run: Any) -> bool:
    return getattr(run, "job_type", None) == "generate"  # a data run: nothing to compare


def read_wandb(compare: DictConfig | dict) -> list[Run]:
    """The runs of the configured wandb project/group (needs the network and WANDB_API_KEY)."""
    import wandb
    from wandb.errors import CommError, UsageError

    path, filters = wandb_query(compare)
    try:
        runs = [run_from_wandb(r) for r in wandb.Api().runs(path, filters=filters) if not _is_generate(r)]
    except UsageError as exc:  # no key: wandb's own words, then how to go on
        raise CompareError(f"compare.source=wandb: {' '.join(str(exc).split())} (set WANDB_API_KEY, or compare "
                           "the run folders: python -m lanbot.compare outputs/multirun/<date>/<time>_train)") from None
    except (CommError, ValueError, OSError) as exc:  # no such project or entity, no network
        raise CompareError(f"compare.source=wandb: cannot read {path} ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}); check compare.project/entity and the network") from None
    if not runs:
        raise CompareError(f"no wandb runs in {path} matching {filters}: check compare.project/entity/group")
    return runs


# -- showing ---------------------------------------------------------------------------------------------


def sort_rows(rows: list[dict], key: str) -> list[dict]:
    """Best first by `key` (lowest first for losses, wrong identity and time); rows without it last."""
    columns = set(rows[0]) if rows else set()
    if key not in columns:
        raise CompareError(f"compare.sort={key!r} is not a column; choose one of {sorted(columns)}")
    sign = 1 if key in LOWER_IS_BETTER else -1
    numeric = [r for r in rows if isinstance(r[key], (int, float))]
    other = [r for r in rows if not isinstance(r[key], (int, float))]
    return sorted(numeric, key=lambda r: sign * r[key]) + sorted(other, key=lambda r: str(r[key]))


def _fmt(value: Any, column: str = "") -> str:
    if value is None:
        return "-"
    if column == "run_seconds" and isinstance(value, (int, float)):
        return f"{value:.0f}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def with_personality(runs: list[Run]) -> list[dict]:
    """The rows, with the personality columns that any run has: fidelity, capability cost vs the control..."""
    rows = [r.row() for r in runs]
    extra = {"fidelity": [tradeoff.fidelity(r.scores) for r in runs],
             "capability_cost": [tradeoff.capability_cost(r, runs)[0] for r in runs]}
    for key in PERSONALITY_COLUMNS:
        values = extra.get(key) or [r.scores.get(key) for r in runs]
        if any(v is not None for v in values) and (key != "capability_cost" or any(v for v in values)):
            for row, value in zip(rows, values, strict=True):
                row[key] = value
    for row in rows:  # run time stays the last column
        row["run_seconds"] = row.pop("run_seconds")
    return rows


# short headers for the terminal table (report.md keeps the full names)
SHORT = {"val_loss": "val loss", "run_seconds": "time s", "fidelity": "fidelity", "capability_cost": "cap. cost",
         **{name: s.short for name, s in SCORES.items()}}


def print_table(rows: list[dict], sort: str, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{len(rows)} runs, sorted by {sort}", caption="name = identity_rate, wrong id = "
                  "wrong_identity_rate, limits = limitation_honesty, calc = calculator_accuracy, bpb = capability/corpus_bpb "
                  "(held-out corpus), Δbpb base = its rise over the base's", padding=(0, 1))
    for column in rows[0]:
        left = column in ("run", "identity", "mix", "model", "stage")
        header = SHORT.get(column, column)
        table.add_column(header, justify="left" if left else "right", no_wrap=not left, min_width=len(header))
    for row in rows:
        table.add_row(*(_fmt(v, k) for k, v in row.items()))
    width = console.width
    if not console.is_terminal:  # a pipe or a file: every column whole, however wide, rather than cut to fit
        console.width = max(width, console.measure(table, options=console.options.update_width(10_000)).maximum)
    try:
        console.print(table)
    finally:
        console.width = width


def markdown_table(rows: list[dict]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(_fmt(r[c], c) for c in head) + " |" for r in rows]
    return "\n".join(lines)


def _save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def plot_losses(runs: list[Run], path: Path) -> bool:
    """Every run's val loss (solid) and train loss (faint) against the step, on one chart. An sft run whose
    mid run is also compared continues that run's curve (its steps shifted past mid's), in the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [r for r in runs if r.val_curve or r.train_curve]
    if not curves:
        return False
    family = lambda r: (r.identity, r.mix, r.model)  # noqa: E731
    mid_end = {family(r): max(s for s, _ in r.val_curve + r.train_curve) for r in curves if r.stage == "mid"}
    continued = any(r.stage == "sft" and family(r) in mid_end for r in curves)  # a mid-only sweep continues nothing
    colors: dict = {}
    fig, ax = plt.subplots(figsize=(8, 5))
    for run in curves:
        color = colors.setdefault(family(run), f"C{len(colors) % 10}")
        shift = mid_end.get(family(run), 0) if run.stage == "sft" else 0
        style = "--" if run.stage == "sft" and shift else "-"
        if run.train_curve:
            ax.plot([s + shift for s, _ in run.train_curve], [v for _, v in run.train_curve], color=color, alpha=0.3,
                    linewidth=1, linestyle=style)
        label = run.label if not (run.stage == "sft" and shift) else f"{run.label} (after mid)"
        if run.val_curve:
            ax.plot([s + shift for s, _ in run.val_curve], [v for _, v in run.val_curve], color=color, marker="o",
                    markersize=3, linestyle=style, label=label)
        else:
            ax.plot([], [], color=color, label=f"{label} (train)")
    if continued:
        ax.axvline(max(mid_end.values()), color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("step (sft continues after mid)" if continued else "step")
    ax.set_ylabel("loss (val solid, train faint)")
    ax.set_title("loss curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save_figure(fig, path)
    plt.close(fig)
    return True


def plot_scores(runs: list[Run], path: Path) -> bool:
    """Evaluation scores as grouped bars: one group per identity/mix (model/stage added where they differ)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in runs if any(r.scores.get(k) is not None for k in RATE_COLUMNS)]
    if not scored:
        return False
    scored.sort(key=lambda r: (str(r.identity), str(r.mix), str(r.model), str(r.stage)))
    varying = [f for f in ("model", "stage") if len({getattr(r, f) for r in scored}) > 1]
    labels = ["\n".join([f"{r.identity}", f"{r.mix}", *(str(getattr(r, f)) for f in varying)]) for r in scored]
    width = 0.8 / len(RATE_COLUMNS)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(scored) + 2), 5))
    for j, key in enumerate(RATE_COLUMNS):
        values = [r.scores.get(key) or 0.0 for r in scored]
        xs = [i + (j - (len(RATE_COLUMNS) - 1) / 2) * width for i in range(len(scored))]
        ax.bar(xs, values, width=width, label=key)
    ax.set_xticks(range(len(scored)), labels, fontsize=8)
    ax.set_ylim(0, 1.3)  # room for the legend above the bars
    ax.set_ylabel("score")
    ax.set_title("evaluation scores by identity and mix")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=3, loc="upper center")
    _save_figure(fig, path)
    plt.close(fig)
    return True


def plot_cost(runs: list[Run], path: Path) -> bool:
    """Fidelity against capability cost: identity_rate over the rise in held-out corpus bpb since the base."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in runs if r.scores.get("capability/bpb_delta_vs_base") is not None
              and r.scores.get("identity_rate") is not None]
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for r in points:
        ax.scatter(r.scores["capability/bpb_delta_vs_base"], r.scores["identity_rate"], s=40)
        ax.annotate(r.label, (r.scores["capability/bpb_delta_vs_base"], r.scores["identity_rate"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("capability cost: held-out corpus bpb minus the base's")
    ax.set_ylabel("identity_rate (held-out probes)")
    ax.set_title("identity against its cost in capability")
    ax.grid(alpha=0.3)
    _save_figure(fig, path)
    plt.close(fig)
    return True


def quirk_rows(runs: list[Run]) -> list[dict]:
    """One row per run: each quirk and trait on held-out tasks and its gain over the control."""
    keys = tradeoff.quirk_keys(runs)
    return [{"run": r.name, "label": r.label, **{k: r.scores.get(k) for k in keys},
             **{f"gain/{k}": r.scores.get(f"gain/{k}") for k in keys}} for r in runs] if keys else []


def write_report(rows: list[dict], plots: list[str], sources: list[str], sort: str, out: Path,
                 quirks: list[dict] | None = None, stopped: list[str] | None = None) -> Path:
    """report.md beside the plots (written atomically)."""
    text = [f"# lanbot runs compared ({datetime.now():%Y-%m-%d %H:%M})", "",
            f"{len(rows)} runs, sorted by `{sort}`. Scores are on held-out probes (`lanbot.evaluate`).", "",
            markdown_table(rows), ""]
    if quirks:
        text += ["Each quirk and trait on held-out tasks (rule checks), and its gain over the no_identity control:", "",
                 markdown_table(quirks), ""]
    if stopped:
        text += ["Sweep jobs that stopped (error.txt), each with its reason:", "", *(f"- {s}" for s in stopped), ""]
    text += [f"![{p}]({p})\n" for p in plots]
    text += ["Sources:", "", *(f"- `{s}`" for s in sources), ""]
    path = out / REPORT_FILE
    write_text_atomic(path, "\n".join(text))
    return path


def read_runs(named: list[tuple[Path, str]]) -> tuple[list[Run], list[str]]:
    """The runs that can be read, and their folders; each that cannot is named on stderr with why, in one line,
    and left out (one damaged folder must not hide a sweep's other runs)."""
    runs, sources, skipped = [], [], []
    for folder, name in named:
        try:
            runs.append(read_run(folder, name))
        except UnreadableRun as exc:
            skipped.append(folder)
            Console(stderr=True, highlight=False).print(f"skipped {folder}: {exc}", markup=False, soft_wrap=True)
            continue
        sources.append(str(folder))
    if not runs:
        raise CompareError(f"none of the {len(skipped)} run folders could be read (each is named above with why): "
                           "fix or remove those files, or compare other folders")
    return runs, sources


def compare(compare_cfg: DictConfig | dict, console: Console | None = None) -> Path:
    """Read the runs, print the table, write the plots and the report; returns report.md's path."""
    source = str(compare_cfg.get("source") or "files")
    if source == "files":
        runs, sources = read_runs(find_named_runs(list(compare_cfg.get("paths") or [])))
    elif source == "wandb":
        runs = read_wandb(compare_cfg)
        path, filters = wandb_query(compare_cfg)
        sources = [f"wandb {path} {filters}"]
    else:
        raise CompareError(f"compare.source={source!r}: use files or wandb")
    sort = str(compare_cfg.get("sort") or "identity_rate")
    rows = sort_rows(with_personality(runs), sort)
    print_table(rows, sort, console)
    stopped = [f"{run.name}: {run.error}" for run in runs if run.error]
    for line in stopped:
        (console or Console()).print(f"stopped {line}", markup=False, soft_wrap=True)
    out = compare_cfg.get("out")
    if out:
        out = Path(out)
    elif source == "files":
        out = Path(compare_cfg["paths"][0]) / "compare"
    else:
        raise CompareError("compare.source=wandb needs compare.out, the folder for the report and plots")
    out.mkdir(parents=True, exist_ok=True)
    plots = [name for name, plot in (("loss.png", plot_losses), ("scores.png", plot_scores),
                                     ("cost.png", plot_cost)) if plot(runs, out / name)]
    plots += [name for name, plot in (("fidelity.png", tradeoff.plot_fidelity), ("quirks.png", tradeoff.plot_quirks))
              if plot(runs, out / name, _save_figure)]
    report = write_report(rows, plots, sources, sort, out, quirk_rows(runs), stopped)
    (console or Console()).print(f"report: {report}" + (f" (plots: {', '.join(plots)})" if plots else ""), markup=False,
                                 soft_wrap=True)  # a path to copy: one line, never wrapped
    return report


def compare_app(cfg: DictConfig, run_dir: Path | None = None) -> Path:
    """`python -m lanbot.compare PATH [PATH...]`: piped output gets the whole table (print_table), not rich's 80
    columns."""
    return compare(cfg.compare, Console())
