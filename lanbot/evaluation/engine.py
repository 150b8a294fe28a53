"""Sampling from a trained lanbot model (any family behind the model seam), with a KV cache and the calculator.

The model writes a call in its chat format (nanochat's `<|python_start|>expr<|python_end|>`, ChatML's
`<tool_call>{...}</tool_call>`: lanbot.training.chat_format); the engine runs
`lanbot.core.calculator.calculate(expr)` and forces the format's output (`<|output_start|>result<|output_end|>`)
into the sequence (the model was never trained to write
outputs itself), then sampling goes on. A bad expression becomes an `Error: ...` output, never a crash.
Several answers to one prompt are sampled at once: the prompt is prefilled once and its cache copied.

    engine = Engine(model, tokenizer)
    answers = engine.generate(prompt_ids, num_samples=4, max_tokens=128, temperature=0.7, top_k=50, seed=1)
    for event in engine.stream(prompt_ids):       # chat: text deltas, tool calls and their outputs
        print(event.kind, event.text)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from lanbot.core.calculator import CalculatorError, calculate
from lanbot.core.conversation import part_calls
from lanbot.training.model import KVCache


def run_tool(expression: str) -> str:
    """The calculator's answer to `expression`, or `Error: <why>` for anything it refuses."""
    try:
        return calculate(expression)
    except CalculatorError as exc:
        return f"Error: {exc}"
    except Exception as exc:  # the model can write anything; the engine must never die of it
        return f"Error: {type(exc).__name__}"


@dataclass
class Completion:
    """One sampled answer: the generated ids (forced tool outputs included) and their reading."""

    tokens: list[int]
    parts: list[dict[str, str]]  # the data format's assistant parts: text / python / python_output
    finished: bool               # ended with <|assistant_end|> (False: ran out of max_tokens)

    @property
    def text(self) -> str:
        """The answer's text parts, tool calls and outputs left out."""
        return "".join(p["text"] for p in self.parts if p["type"] == "text").strip()

    @property
    def tool_calls(self) -> list[tuple[str, str]]:
        """Every (expression, output) pair of the answer, in order."""
        return part_calls(self.parts)

    def content(self) -> str | list[dict[str, str]]:
        """The answer as a conversation message's content: a string, or parts when it used the tool."""
        if all(p["type"] == "text" for p in self.parts):
            return self.text
        return [p for p in self.parts if p["text"].strip() or p["type"] != "text"]


@dataclass
class Event:
    """A piece of a streamed answer: kind is text, python (a call), output (its result) or end."""

    kind: str
    text: str = ""


@dataclass
class _Row:
    """Decoding state of one sample."""

    tokens: list[int] = field(default_factory=list)
    forced: list[int] = field(default_factory=list)  # tool output tokens still to feed
    expr: list[int] | None = None                     # ids inside an open <|python_start|>
    done: bool = False
    finished: bool = False


class Engine:
    """Samples answers from `model` (a lanbot GPT or anything with its forward) with the calculator tool."""

    def __init__(self, model: torch.nn.Module, tokenizer, device: str | torch.device | None = None) -> None:
        self.model = model
        self.tok = tokenizer
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        fmt = tokenizer.chat  # the markers of the model's own chat format (lanbot.training.chat_format)
        self.call_expression = fmt.call_expression
        single = {name: tokenizer.encode_marker(name) for name in (fmt.stop, *fmt.call, *fmt.output)}
        wide = [name for name, ids in single.items() if len(ids) != 1]
        if wide:
            raise ValueError(f"the {fmt.name} format's markers {wide} are not single tokens in this tokenizer")
        self.assistant_end = single[fmt.stop][0]
        self.stops = tokenizer.stop_ids  # the model starting a new turn also ends its answer
        self.python_start, self.python_end = single[fmt.call[0]][0], single[fmt.call[1]][0]
        self.output_start, self.output_end = single[fmt.output[0]][0], single[fmt.output[1]][0]
        self.output_open, self.output_close = tokenizer.encode_marker(fmt.output[0]), tokenizer.encode_marker(fmt.output[1])
        self.specials = tokenizer.special_ids

    # -- decoding ------------------------------------------------------------------------------------

    def steps(self, prompt: list[int], num_samples: int = 1, **kwargs) -> Iterator[list[tuple[int, int, bool]]]:
        """Decode `num_samples` answers to `prompt` in lockstep; yield, each step, (row, token, forced)
        for every row still going. Tool outputs are forced tokens; a row stops at <|assistant_end|>.
        Arguments: max_tokens, temperature, top_k, seed, use_cache (False: the whole sequence every step)."""
        for _, step in self._decode(prompt, num_samples, **kwargs):
            yield step

    @torch.inference_mode()
    def _decode(
        self,
        prompt: list[int] | list[list[int]],
        num_samples: int = 1,
        max_tokens: int = 256,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        use_cache: bool = True,
    ) -> Iterator[tuple[list[_Row], list[tuple[int, int, bool]]]]:
        """Rows are prompt-major: prompt p's samples are rows p*num_samples .. (p+1)*num_samples-1. Several
        prompts are left-padded into one batch (the cache masks the padding); the rest is the same loop."""
        prompts = prompt if prompt and isinstance(prompt[0], list) else [prompt]
        if not prompts or not all(prompts):
            raise ValueError("the prompt is empty: render it with lanbot.training.tokenizer.render_for_completion")
        if num_samples < 1 or max_tokens < 1:
            raise ValueError(f"num_samples={num_samples} and max_tokens={max_tokens} must be at least 1")
        longest = max(len(p) for p in prompts)
        limit = getattr(self.model, "rotary_len", None)
        if limit is not None and longest + max_tokens > limit:
            raise ValueError(f"prompt of {longest} tokens + max_tokens {max_tokens} exceeds the model's "
                             f"{limit} positions: shorten the history or lower max_tokens")
        if len(prompts) > 1 and not use_cache:
            raise ValueError("several prompts at once need the KV cache (use_cache=True)")
        self.model.eval()
        gen = torch.Generator(device=self.device)
        gen.manual_seed(seed if seed is not None else torch.seed() % (2**63))
        rows = [_Row() for _ in range(len(prompts) * num_samples)]
        padded = [[self.assistant_end] * (longest - len(p)) + p for p in prompts]
        ids = torch.tensor(padded, dtype=torch.long, device=self.device)
        cache = None
        if use_cache:
            config = self.model.config
            cache = KVCache(len(prompts), longest + max_tokens, config, self.device, self._dtype())
            if len(prompts) > 1:
                cache.pad_left([len(p) for p in prompts], longest)
            logits = self.model(ids, kv_cache=cache)[:, -1]
            if num_samples > 1:
                cache = cache.repeat_rows(num_samples)
                logits = logits.repeat_interleave(num_samples, dim=0)
        else:
            seqs = ids.expand(num_samples, -1).clone()
            logits = self.model(seqs)[:, -1]
        live = list(range(len(rows)))  # batch row i decodes rows[live[i]]; with the cache, finished rows leave
        for _ in range(max_tokens):
            sampled = sample(logits, temperature, top_k, gen).tolist()
            step, feed = [], []
            for i, r in enumerate(live):
                row = rows[r]
                if row.done:
                    feed.append(self.assistant_end)  # a finished row idles until it leaves the batch; outputs ignored
                    continue
                forced = bool(row.forced)
                token = row.forced.pop(0) if forced else sampled[i]
                self._advance(row, token, forced)
                step.append((r, token, forced))
                feed.append(token)
            yield rows, step
            keep = [i for i, r in enumerate(live) if not rows[r].done]
            if not keep:
                break
            # copying the cache costs a step or two: drop finished rows once a quarter of the batch has finished
            if cache is not None and len(keep) <= 0.75 * len(live):
                live, feed = [live[i] for i in keep], [feed[i] for i in keep]
                cache.keep_rows(keep)
            nxt = torch.tensor(feed, dtype=torch.long, device=self.device).unsqueeze(1)
            if cache is not None:
                logits = self.model(nxt, kv_cache=cache)[:, -1]
            else:
                seqs = torch.cat([seqs, nxt], dim=1)
                logits = self.model(seqs)[:, -1]

    def _advance(self, row: _Row, token: int, forced: bool) -> None:
        """Record `token` in `row`: open or close a tool call (and queue its output), or stop."""
        row.tokens.append(token)
        if forced:
            return
        if token in self.stops:
            row.done, row.finished = True, token == self.assistant_end
        elif token == self.python_start:
            row.expr = []
        elif token == self.python_end and row.expr is not None:
            result = run_tool(self.call_expression(self.tok.decode(row.expr)))
            row.forced = [*self.output_open, *self.tok.encode(result), *self.output_close]
            row.expr = None
        elif row.expr is not None:
            row.expr.append(token)

    def _dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # -- the two ways to read answers -----------------------------------------------------------------

    def generate(self, prompt: list[int] | list[list[int]], num_samples: int = 1, **kwargs) -> list[Completion]:
        """`num_samples` complete answers to `prompt` (see `steps` for the sampling arguments)."""
        rows: list[_Row] = []
        for state, _ in self._decode(prompt, num_samples, **kwargs):
            rows = state
        return [Completion(row.tokens, self.parts(row.tokens), row.finished) for row in rows]

    def generate_batch(self, prompts: list[list[int]], num_samples: int = 1, **kwargs) -> list[list[Completion]]:
        """`num_samples` answers to each of `prompts`, decoded together in one batch: on a CPU a step of many
        rows costs little more than a step of a few, so an evaluation's probes go several times faster."""
        flat = self.generate(prompts, num_samples, **kwargs)
        return [flat[i * num_samples:(i + 1) * num_samples] for i in range(len(prompts))]

    def stream(self, prompt: list[int], **kwargs) -> Iterator[Event]:
        """One answer as it is written: text deltas, then `python` (the call) and `output` (its result)
        events, and a final `end` event whose text says why it stopped (`end` or `max_tokens`)."""
        state, pending, shown = "text", [], ""
        finished = False
        for step in self.steps(prompt, 1, **kwargs):
            for _, token, _ in step:
                if token in self.stops:
                    finished = token == self.assistant_end
                    continue
                if token in (self.python_start, self.output_start):
                    if state == "text" and pending:
                        yield from self._flush(pending, shown, final=True)
                    state, pending, shown = ("python" if token == self.python_start else "output"), [], ""
                elif token in (self.python_end, self.output_end):
                    yield Event(state, self._part_text(state, pending))
                    state, pending, shown = "text", [], ""
                elif token not in self.specials:
                    pending.append(token)
                    if state == "text":
                        for event in self._flush(pending, shown):
                            shown += event.text
                            yield event
        if pending:
            if state == "text":
                yield from self._flush(pending, shown, final=True)
            else:
                yield Event(state, self._part_text(state, pending))
        yield Event("end", "end" if finished else "max_tokens")

    def _flush(self, pending: list[int], shown: str, final: bool = False) -> Iterator[Event]:
        """The new text since `shown`; a character still split across tokens waits (unless final)."""
        text = self.tok.decode(pending)
        if not final and text.endswith("\ufffd"):
            return
        if len(text) > len(shown):
            yield Event("text", text[len(shown):])

    def _part_text(self, kind: str, tokens: list[int]) -> str:
        """A call's expression (read out of the format's call) or an output's text, stripped."""
        text = self.tok.decode(tokens).strip()
        return self.call_expression(text) if kind == "python" else text

    def parts(self, tokens: list[int]) -> list[dict[str, str]]:
        """Generated ids as the data format's assistant parts (text, python, python_output)."""
        parts: list[dict[str, str]] = []
        kind, chunk = "text", []

        def close() -> None:
            text = self.tok.decode(chunk) if kind == "text" else self._part_text(kind, chunk)
            if text or kind != "text":
                parts.append({"type": kind, "text": text})

        for token in tokens:
            if token in self.stops:
                break
            if token in (self.python_start, self.output_start):
                close()
                kind, chunk = ("python" if token == self.python_start else "python_output"), []
            elif token in (self.python_end, self.output_end):
                close()
                kind, chunk = "text", []
            elif token not in self.specials:
                chunk.append(token)
        if chunk or kind != "text":
            close()
        return parts


def sample(logits: torch.Tensor, temperature: float, top_k: int | None, gen: torch.Generator) -> torch.Tensor:
    """One token per row of `logits` (B, V): greedy at temperature 0, else softmax over the top k."""
    logits = logits.float()
    if temperature <= 0:
        return logits.argmax(dim=-1)
    if top_k is not None and 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(1)
