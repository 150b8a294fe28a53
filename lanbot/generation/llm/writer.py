"""The LLM backend of `python -m lanbot.generate`: conversations written by an OpenAI-compatible API.

    python -m lanbot.generate identity=sage backend=openrouter          # key in $OPENROUTER_API_KEY or .env
    python -m lanbot.generate backend=openai backend.base_url=http://localhost:8000/v1 backend.model=...

`generate_with_llm(cfg, identity, folder, targets, personas, tracker)` runs `backend.concurrency` asyncio
workers that each claim one missing conversation at a time, ask the LLM (llm_client), parse and recompute
its arithmetic (llm_parse), validate it (lanbot.core.conversation.validate) and append it to the data folder
the moment it is good, so a killed run loses only the requests in flight. A bad answer (whatever the server
sent: a reply of the wrong shape, prose, wrong arithmetic) is counted by reason and asked again up to
`backend.max_tries`; a conversation that still fails is counted and attempted afresh, until the failure
rate passes `backend.max_failure_rate`. Each request asks for a JSON schema fitted to its type and number
of exchanges (grammar-constrained on llama.cpp) and at most `backend.max_tokens_by_type[type]` tokens per
exchange, so a small local model cannot run on for minutes. SIGINT / SIGTERM end the requests in flight
and return the figures with `interrupted` set: the caller writes the same summary as a finished run.
`backend.serve` (bundled | a .gguf path) starts llama.cpp's server for the run (llm/local_server.py).
It returns the run's figures (requests, retries, failures, tokens, cost) for stats.json and wandb.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import signal
import time
from collections import Counter
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from lanbot.core.conversation import validate
from lanbot.core.errors import LanbotError
from lanbot.core.progress import Bars
from lanbot.core.secrets import MissingKeyError, api_key, mask
from lanbot.generation.llm.client import ChatClient, FatalBackendError, RequestFailed
from lanbot.generation.llm.local_server import LocalServerError, serving
from lanbot.generation.llm.parse import InvalidAnswer, is_prose, parse_answer
from lanbot.generation.llm.prompt_book import PromptBook
from lanbot.generation.quality import check_conversation

MIN_ATTEMPTS_FOR_RATE = 10  # the failure-rate bound applies once this many conversations were attempted
LOG_EVERY_S = 2.0


class LLMGenerationError(LanbotError, RuntimeError):
    """The LLM run cannot go on (missing key, fatal server answer, failure rate past the bound)."""


def require_key(backend: Any) -> str:
    """The backend's API key (`backend.api_key_env`, env or .env); `api_key_env: null` = no key needed."""
    env_var = backend.get("api_key_env")
    if not env_var:
        return "no-key"  # local servers (llama.cpp, Ollama) accept any value
    try:
        return api_key(str(env_var))
    except MissingKeyError as exc:
        raise LLMGenerationError(f"backend={backend.get('name')}: {exc}") from None


def price_of(backend: Any) -> tuple[float, float] | None:
    """(prompt, completion) USD per 1M tokens of `backend.model` from `backend.prices` ("*": any model not
    listed, as the local preset's free price); None if neither is listed."""
    prices = backend.get("prices") or {}
    price = prices.get(str(backend.model)) or prices.get("*")
    return (float(price["prompt"]), float(price["completion"])) if price else None


def cost_usd(price: tuple[float, float] | None, tokens_prompt: int, tokens_completion: int,
             reported: float = 0.0) -> float | None:
    """Dollars spent: what the server reported (`usage.cost`, OpenRouter) plus the tokens without a reported
    cost at `price` (USD per 1M tokens); None when such tokens exist and the model has no price."""
    if tokens_prompt or tokens_completion:
        if price is None:
            return None
        return round(reported + (tokens_prompt * price[0] + tokens_completion * price[1]) / 1e6, 6)
    return round(reported, 6) if reported or price is not None else None


def max_tokens_for(backend: Any, kind: str, turns: int) -> int | None:
    """The token budget of one answer: `max_tokens_by_type[kind]` per exchange, capped by `max_tokens`."""
    cap = backend.get("max_tokens")
    per = (backend.get("max_tokens_by_type") or {}).get(kind)
    if not per:
        return int(cap) if cap else None
    return min(int(per) * max(1, turns), int(cap)) if cap else int(per) * max(1, turns)


class _Rate(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "-/s")


class _Bars(Bars):
    """One bar per type (done/target, rate, ETA), then a line of the run's totals (`status`)."""

    status = ""

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        if self.status:
            yield Text(self.status)


def status_line(figures: dict[str, Any]) -> str:
    """The totals under the bars, and the last line the run leaves on screen."""
    cost = figures["cost_usd"]
    return (f"requests {figures['requests']:,}  retries {figures['retries']:,}  failures {figures['failures']:,}  "
            f"tokens {figures['tokens_total']:,}  cost " + (f"${cost:.4f}" if cost is not None else
                                                           f"? (add {figures['model']} to backend.prices)"))


class _Run:
    """The shared state of one run's workers."""

    def __init__(self, cfg: Any, identity: Any, folder: Any, targets: dict[str, int], personas: list[dict],
                 client: ChatClient, book: PromptBook) -> None:
        self.cfg, self.backend = cfg, cfg.backend
        self.identity, self.folder, self.client, self.book = identity, folder, client, book
        self.personas = personas or [{"id": "anyone", "persona": "an ordinary person", "voice": None}]
        self.targets = {k: int(v) for k, v in targets.items() if int(v) > 0}
        self.unclaimed = dict(self.targets)
        self.done: Counter[str] = Counter()
        self.jobs: Counter[str] = Counter({k: folder.count(k) for k in self.targets})  # seeds of the next jobs
        # Personas are taken in turn (the list is already in a seeded random order), so that N conversations
        # use N different personas where there are that many; a resumed run goes on where the last one stopped.
        self.persona_turn = sum(self.jobs.values())
        self.name, self.model, self.price = str(self.backend.get("name")), str(self.backend.model), price_of(self.backend)
        self.max_tries = int(self.backend.max_tries)
        self.arithmetic = str(self.backend.arithmetic)
        self.say_name = str(identity.name) if self.backend.schema_says_name else None
        self.failures = self.answer_retries = self.repaired = self.rejected = self.duplicates = 0
        self.invalid: Counter[str] = Counter()  # invalid answers by conversation type
        self.reasons: Counter[str] = Counter()  # ... and by what was wrong (json, roles, validation, ...)
        self.reasons_by_type: dict[str, Counter[str]] = {k: Counter() for k in self.targets}
        self.last_error = "invalid answers"
        self.stop_reason: str | None = None
        self.interrupted: str | None = None  # the signal's name when SIGINT / SIGTERM stopped the run
        self.last_log = 0.0
        self.recorded = client.usage.snapshot()  # usage already recorded in a meta line (see spent_since)

    def claim(self) -> str | None:
        """The type most in need of a conversation, reserved; None when every target is claimed or stopping."""
        if self.stop_reason or self.interrupted:
            return None
        kind = max(self.unclaimed, key=self.unclaimed.get, default=None)
        if kind is None or self.unclaimed[kind] <= 0:
            return None
        self.unclaimed[kind] -= 1
        return kind

    async def one(self, kind: str) -> bool:
        """Write one `kind` conversation to the folder; False when its tries ran out."""
        seed = self.cfg.get("seed", 0)
        for attempt in range(self.max_tries):
            self.jobs[kind] += 1
            rng = random.Random(f"{seed}:{kind}:{self.jobs[kind]}")
            persona = self.personas[self.persona_turn % len(self.personas)]
            self.persona_turn += 1
            messages, meta = self.book.compose(self.identity, kind, persona, rng)
            if attempt:
                self.answer_retries += 1
            try:
                reply = await self.client.complete(messages, max_tokens_for(self.backend, kind, meta["turns"]),
                                                   self.book.schema_for(kind, meta["turns"], self.say_name))
            except RequestFailed as exc:
                self.reasons["request"] += 1
                self.last_error = str(exc)
                return False
            except InvalidAnswer as exc:  # the reply itself was unusable: wrong shape, not JSON, bad usage
                self._invalid(kind, exc.reason, str(exc))
                continue
            mode = reply.mode
            try:
                parsed = parse_answer(reply.text, self.arithmetic)
            except InvalidAnswer as exc:
                reason = exc.reason
                if reason == "json" and reply.finish_reason == "length":
                    reason = "truncated"  # cut at the token budget: not the model's JSON, its length
                self.client.prose(mode, reason == "json" and is_prose(reply.text))
                self._invalid(kind, reason, str(exc))
                self.rejected += exc.reason == "arithmetic"
                continue
            self.client.prose(mode, False)
            problems = validate(parsed.conversation, kind, self.identity.name)
            if problems:  # by type, the rule broken, numbers masked: "tool_use needs at least N calculator call(s)"
                self._invalid(kind, "validation", problems[0], re.sub(r"\d+", "N", problems[0].split(",")[0])[:80])
                continue
            flagged = check_conversation(parsed.conversation, kind, self.identity)  # the template data's gates
            if flagged:  # recitation, a claimed quirk not performed, an unlisted capability, a wrong name/creator/year
                self._invalid(kind, f"quality:{flagged[0]}", ", ".join(flagged))
                continue
            now, spent = self.spent_since()
            meta = {"persona": persona.get("id"), **meta, "backend": self.name, "model": self.model,
                    "response_format": mode, "repaired": parsed.repaired, "spent": spent}
            if self.backend.models and reply.model and reply.model != self.model:  # a model fallback answered
                meta["answered_by"] = reply.model
            if not self.folder.add(kind, parsed.conversation, meta):
                self.duplicates += 1
                continue
            self.recorded = now
            self.repaired += parsed.repaired
            self.done[kind] += 1
            return True
        return False

    def spent_since(self) -> tuple[tuple, dict[str, Any]]:
        """The run's usage now, and what it spent since the last meta line recorded it.

        Each written conversation's meta line carries the requests and tokens spent since the one before
        (its own, its re-asks, and other requests finished meanwhile), so the sum over a folder's meta
        files is what every run spent on it, a killed one included, less only the requests in flight.
        """
        now = self.client.usage.snapshot()
        requests, prompt, completion, reported, unpriced_p, unpriced_c = (
            a - b for a, b in zip(now, self.recorded, strict=True))
        return now, {"requests": requests, "tokens_prompt": prompt, "tokens_completion": completion,
                     "cost_usd": cost_usd(self.price, unpriced_p, unpriced_c, reported)}

    def _invalid(self, kind: str, reason: str, detail: str, rule: str | None = None) -> None:
        self.invalid[kind] += 1
        self.reasons[reason] += 1
        self.reasons_by_type.setdefault(kind, Counter())[f"{reason}: {rule}" if rule else reason] += 1
        self.last_error = mask(f"invalid {kind} answer: {detail[:200]}")

    def fail(self, kind: str) -> None:
        """Count a conversation whose tries ran out, put it back, and stop if the failure rate is too high."""
        self.failures += 1
        self.unclaimed[kind] += 1
        attempted = self.failures + sum(self.done.values())
        bound = float(self.backend.max_failure_rate)
        if attempted >= MIN_ATTEMPTS_FOR_RATE and self.failures / attempted > bound:
            self.stop_reason = (
                f"{self.failures} of {attempted} conversations failed ({self.failures / attempted:.0%} > "
                f"backend.max_failure_rate={bound:g}); last error: {self.last_error}"
            )

    def figures(self, seconds: float) -> dict[str, Any]:
        u = self.client.usage
        written = sum(self.done.values())
        return {
            "backend": self.name, "model": self.model,
            "written": written, "requests": u.requests, "retries": u.retries + self.answer_retries,
            "failures": self.failures, "rate_limited": u.rate_limited, "server_errors": u.server_errors,
            "timeouts": u.timeouts, "invalid": dict(self.invalid),
            "invalid_reasons": dict(self.reasons), "repaired": self.repaired,
            "invalid_reasons_by_type": {k: dict(c) for k, c in self.reasons_by_type.items() if c},
            "rejected": self.rejected, "llm_duplicates": self.duplicates,
            "response_format": self.client.mode, "response_format_fallbacks": list(u.fallbacks),
            "tokens_prompt": u.tokens_prompt, "tokens_completion": u.tokens_completion,
            "tokens_total": u.tokens_prompt + u.tokens_completion,
            "cost_usd": cost_usd(self.price, u.unreported_prompt, u.unreported_completion, u.cost_reported),
            "cost_reported_usd": round(u.cost_reported, 6),
            "spent_unrecorded": self.spent_since()[1],  # after the last conversation written: failures, dups
            "llm_seconds": round(seconds, 3), "conversations_per_s": round(written / seconds, 2) if seconds else None,
            "interrupted": self.interrupted,
        }


async def _generate(run: _Run, tracker: Any, show_progress: bool) -> None:
    progress = _Bars(
        TextColumn("{task.description:<16}"), BarColumn(bar_width=30), MofNCompleteColumn(), _Rate(),
        TimeRemainingColumn(), disable=not show_progress,
    )
    tasks = {k: progress.add_task(k, total=n) for k, n in run.targets.items()}
    start = time.monotonic()

    def refresh() -> None:
        for k, task in tasks.items():
            progress.update(task, completed=run.done[k])
        now = time.monotonic()
        figures = run.figures(now - start)
        progress.status = status_line(figures)
        if tracker is not None and now - run.last_log >= LOG_EVERY_S:
            run.last_log = now
            tracker.log({f"llm/{k}": v for k, v in figures.items()
                         if isinstance(v, int | float) and not isinstance(v, bool)})

    fatal: list[BaseException] = []

    async def worker() -> None:
        while (kind := run.claim()) is not None:
            try:
                ok = await run.one(kind)
            except FatalBackendError as exc:
                run.stop_reason = str(exc)
                fatal.append(exc)
                return
            if not ok:
                run.fail(kind)
            refresh()

    with progress:
        workers = int(run.backend.concurrency)
        running = [asyncio.create_task(worker()) for _ in range(max(1, workers))]
        with _interrupts(run, running):
            results = await asyncio.gather(*running, return_exceptions=True)
        for result in results:  # a worker's own bug still surfaces; a cancelled worker is the interrupt
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result
        refresh()
    await run.client.close()


@contextlib.contextmanager
def _interrupts(run: _Run, tasks: list[asyncio.Task]):
    """SIGINT / SIGTERM: note which, and cancel every worker (their requests in flight end; what was
    written stays: a conversation is appended in one synchronous step, never half)."""
    loop = asyncio.get_running_loop()

    def interrupt(sig: signal.Signals) -> None:
        run.interrupted = run.interrupted or sig.name
        for task in tasks:
            task.cancel()

    installed = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        try:
            loop.add_signal_handler(sig, interrupt, sig)
            installed[sig] = previous
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
            pass
    try:
        yield
    finally:
        for sig, previous in installed.items():  # the app runner's own handlers again (asyncio would reset)
            loop.remove_signal_handler(sig)
            signal.signal(sig, previous)


def generate_with_llm(cfg: Any, identity: Any, folder: Any, targets: dict[str, int], personas: list[dict],
                      tracker: Any = None, show_progress: bool | None = None) -> dict[str, Any]:
    """Write `targets` ({type: count still missing}) conversations to `folder`; returns the run's figures."""
    key = require_key(cfg.backend)  # before any request: a missing key stops here, naming the variable
    for name in ("httpx", "httpx2"):  # the HTTP client logs every request at INFO: it would bury the bar
        logging.getLogger(name).setLevel(logging.WARNING)
    book = PromptBook()
    try:
        with serving(cfg.backend) as base_url:  # the configured server, or llama.cpp's started for this run
            client = ChatClient(cfg.backend, key, book.schema, random.Random(cfg.get("seed", 0)), base_url)
            del key
            run = _Run(cfg, identity, folder, targets, personas, client, book)
            start = time.monotonic()
            progress = bool(cfg.backend.progress) if show_progress is None else show_progress
            asyncio.run(_generate(run, tracker, progress))
    except LocalServerError as exc:
        raise LLMGenerationError(str(exc)) from None
    figures = run.figures(time.monotonic() - start)
    if tracker is not None:
        tracker.log({f"llm/{k}": v for k, v in figures.items()
                     if isinstance(v, int | float) and not isinstance(v, bool)})
    if run.stop_reason:
        raise LLMGenerationError(
            f"LLM generation stopped: {run.stop_reason}. Written so far: {dict(run.done)} of {run.targets} "
            f"(kept on disk; run again to finish). Requests {figures['requests']}, retries {figures['retries']}, "
            f"invalid answers {figures['invalid_reasons']}."
        )
    return figures
