"""One chat request to an OpenAI-compatible server, with retries: the transport half of the LLM backend.

`ChatClient.complete(messages, max_tokens, schema)` sends one request through the `openai` package's
AsyncOpenAI and returns a `Reply` (text, the mode it was asked in, finish reason, usage). Real servers
differ, and the client follows what they answer:

- Response format: json_schema (OpenAI, vLLM, OpenRouter) -> json_object_schema (`{"type": "json_object",
  "schema": ...}`: llama.cpp's servers turn the schema into a grammar; llama-cpp-python 0.2.60 answers
  json_schema with HTTP 500 "Input should be 'text' or 'json_object'") -> json_object -> text. A refusal
  (HTTP 400, 422 or 500 whose body names response_format / json_schema / json_object) moves to the next mode
  once for the whole run, recorded in stats.json; so does a server that ignores the format and answers
  prose `PROSE_LIMIT` times in a row.
- Time and size: every request has a deadline (`backend.timeout_s`, connect + total,
  `backend.connect_timeout_s` for the connect alone) enforced around the whole exchange, so a server dripping
  a byte a second cannot stretch it (the transport's own timeout applies per read); the body is read as a
  stream and cut at `MAX_REPLY_BYTES`, so a server streaming whitespace or SSE forever costs at most that
  much memory per request, not timeout x bandwidth.
- Only the `openai` package's own API: `openai.Timeout` and `with_streaming_response`, the same in openai
  1.x (httpx) and 3.x (httpx2), so the transport under it is the package's business.
- Retries: 429 waits as long as Retry-After says; 5xx, timeouts and connection errors back off
  exponentially with jitter; tries are bounded. A wrong key (401/403) or an unknown model (404) is fatal.
- Replies are read as plain JSON and checked field by field (`read_reply`): a reply of the wrong shape, an
  HTML page, a non-string content, lone surrogates or negative usage raise `InvalidAnswer` with a reason,
  which the writer counts and asks again; nothing a server sends can end the run with a traceback.
- OpenRouter: attribution headers (`backend.app_url` -> HTTP-Referer, `backend.app_title` -> X-Title),
  provider routing (`backend.provider`) and model fallbacks (`backend.models`) are passed through, and the
  cost the server reports in `usage.cost` is used where present (the price table only as fallback).
- Anything printed is masked: the key (and any registered secret) never reaches an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

import openai

from lanbot.core.errors import LanbotError
from lanbot.core.secrets import mask, remember_secret
from lanbot.generation.llm.parse import InvalidAnswer

MODES = ("json_schema", "json_object_schema", "json_object", "text")
REFUSAL_STATUSES = (400, 422, 500)  # what real servers answer for a response_format they do not take
REFUSAL_WORDS = ("response_format", "json_schema", "json_object", "response format")
PROSE_LIMIT = 3  # prose answers in a row, in a JSON mode, before the server is taken to ignore that mode
# A reply of max_tokens=16k is about 64 KB of text, at most ~6x that JSON-escaped: 4 MB is far above any real
# answer and bounds a runaway stream (16 requests in flight: 64 MB at worst).
MAX_REPLY_BYTES = 4 << 20


class FatalBackendError(LanbotError, RuntimeError):
    """An error no retry can fix (bad key, unknown model, bad URL); the run stops with this message."""


class ReplyTooLarge(Exception):
    """A reply body past MAX_REPLY_BYTES: the request is cut and tried again."""


class RequestFailed(LanbotError, RuntimeError):
    """One request failed after its tries; counted, the conversation is attempted again later."""


@dataclass
class Reply:
    """One 200 answer, checked: the text, the mode it was asked in, why it ended, and who answered."""

    text: str
    mode: str
    finish_reason: str | None
    model: str | None


@dataclass
class Usage:
    """Running totals of one run's requests."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    timeouts: int = 0
    tokens_prompt: int = 0
    tokens_completion: int = 0
    cost_reported: float = 0.0        # USD the server reported in usage.cost (OpenRouter)
    unreported_prompt: int = 0        # tokens of replies without a reported cost: priced from backend.prices
    unreported_completion: int = 0
    fallbacks: list[str] = field(default_factory=list)

    def snapshot(self) -> tuple[int, int, int, float, int, int]:
        return (self.requests, self.tokens_prompt, self.tokens_completion, self.cost_reported,
                self.unreported_prompt, self.unreported_completion)


class ChatClient:
    """Async chat completions with bounded retries, a deadline per request and the format fallback chain."""

    def __init__(self, backend: Any, api_key: str, schema: dict, rng: random.Random | None = None,
                 base_url: str | None = None) -> None:
        self.model = str(backend.model)
        self.temperature = float(backend.temperature)
        self.max_tokens = backend.max_tokens
        self.max_tries = int(backend.max_tries)
        self.backoff_s = float(backend.backoff_s)
        self.backoff_max_s = float(backend.backoff_max_s)
        self.deadline_s = float(backend.timeout_s)
        mode = str(backend.response_format)
        if mode not in MODES:
            raise FatalBackendError(f"backend.response_format={mode!r}; use one of {', '.join(MODES)}")
        self.mode = mode
        self.schema = schema
        self.rng = rng or random.Random()
        self.usage = Usage()
        self.prose_in_a_row = 0
        self.extra = _extra_body(backend)
        headers = {name: str(backend[key]) for key, name in (("app_url", "HTTP-Referer"), ("app_title", "X-Title"))
                   if backend.get(key)}
        remember_secret(api_key)
        connect = float(backend.connect_timeout_s or min(10.0, self.deadline_s))
        # Retries are ours (Retry-After, jitter, counting), so the client's own are off.
        self.client = openai.AsyncOpenAI(
            base_url=base_url or str(backend.base_url), api_key=api_key, max_retries=0, default_headers=headers or None,
            timeout=openai.Timeout(self.deadline_s, connect=min(connect, self.deadline_s)),
        )

    async def close(self) -> None:
        await self.client.close()

    def _response_format(self, mode: str, schema: dict) -> dict | None:
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "conversation", "schema": schema}}
        if mode == "json_object_schema":
            return {"type": "json_object", "schema": schema}
        if mode == "json_object":
            return {"type": "json_object"}
        return None

    async def complete(self, messages: list[dict], max_tokens: int | None = None,
                       schema: dict | None = None) -> Reply:
        """The checked reply to one request; raises RequestFailed, InvalidAnswer or FatalBackendError."""
        last = ""
        for attempt in range(self.max_tries):
            if attempt:
                self.usage.retries += 1
            mode = self.mode
            body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature,
                                    **self.extra}
            budget = max_tokens or self.max_tokens
            if budget:
                body["max_tokens"] = int(budget)
            if (fmt := self._response_format(mode, schema or self.schema)) is not None:
                body["response_format"] = fmt
            self.usage.requests += 1
            try:
                # Read as raw JSON so that each field is checked here instead of trusted; the deadline covers
                # the whole exchange, the body is bounded by MAX_REPLY_BYTES.
                raw = await asyncio.wait_for(self._post(body), self.deadline_s)
            except (asyncio.TimeoutError, openai.APITimeoutError):
                self.usage.timeouts += 1
                last = f"no answer within backend.timeout_s={self.deadline_s:g}"
                await asyncio.sleep(self._backoff(attempt))
                continue
            except openai.RateLimitError as exc:
                self.usage.rate_limited += 1
                last = f"429 rate limited: {_short(exc)}"
                await asyncio.sleep(self._retry_after(exc) or self._backoff(attempt))
                continue
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
                raise FatalBackendError(
                    f"{exc.status_code} from {self.client.base_url} (model {self.model!r}): {_short(exc)}; "
                    "check the key, backend.base_url and backend.model"
                ) from None
            except openai.APIStatusError as exc:
                if mode != "text" and _refuses_format(exc):
                    self._fall_back(mode, f"HTTP {exc.status_code}")
                    continue  # a refused format is the server's answer, not the conversation's fault
                if exc.status_code < 500 and exc.status_code != 408:
                    raise RequestFailed(f"HTTP {exc.status_code}: {_short(exc)}") from None
                self.usage.server_errors += 1
                last = f"HTTP {exc.status_code}: {_short(exc)}"
                await asyncio.sleep(self._backoff(attempt))
                continue
            except openai.APIConnectionError as exc:
                last = f"connection error: {_short(exc)}"
                await asyncio.sleep(self._backoff(attempt))
                continue
            except ReplyTooLarge as exc:
                last = str(exc)
                continue
            except (OSError, ValueError) as exc:  # anything else the transport lets out

                last = f"transport error: {type(exc).__name__}: {_short(exc)}"
                await asyncio.sleep(self._backoff(attempt))
                continue
            reply = read_reply(raw, mode)  # InvalidAnswer goes to the writer: re-asked there
            self._count(reply)
            if not reply.text.strip():
                last = "empty reply"
                continue
            return reply
        raise RequestFailed(f"{self.max_tries} tries, last: {last}")

    async def _post(self, body: dict[str, Any]) -> bytes:
        """One chat completion's raw body, streamed and cut at MAX_REPLY_BYTES."""
        standard = {k: v for k, v in body.items() if k not in self.extra}
        chunks: list[bytes] = []
        size = 0
        async with self.client.chat.completions.with_streaming_response.create(
                **standard, extra_body=self.extra or None) as response:
            async for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise ReplyTooLarge(f"the reply passed {MAX_REPLY_BYTES >> 20} MB; cut off")
                chunks.append(chunk)
        return b"".join(chunks)

    def _count(self, reply: _Checked) -> None:
        u = self.usage
        u.tokens_prompt += reply.prompt_tokens
        u.tokens_completion += reply.completion_tokens
        if reply.cost is not None:
            u.cost_reported += reply.cost
        else:
            u.unreported_prompt += reply.prompt_tokens
            u.unreported_completion += reply.completion_tokens

    def prose(self, mode: str, is_prose: bool) -> None:
        """Note whether a reply asked for in `mode` was prose; PROSE_LIMIT in a row: the server ignores it."""
        if mode == "text" or not is_prose:
            self.prose_in_a_row = 0
            return
        self.prose_in_a_row += 1
        if self.prose_in_a_row >= PROSE_LIMIT:
            self.prose_in_a_row = 0
            self._fall_back(mode, f"{PROSE_LIMIT} prose answers")

    def _fall_back(self, mode: str, why: str) -> None:
        if self.mode == mode:  # other requests in flight may have fallen back already
            self.mode = MODES[MODES.index(mode) + 1]
            self.usage.fallbacks.append(f"{mode}->{self.mode} ({why})")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform in [base, base * 2**attempt], capped."""
        ceiling = min(self.backoff_max_s, self.backoff_s * 2**attempt)
        return self.rng.uniform(min(self.backoff_s, ceiling), ceiling)

    def _retry_after(self, exc: openai.APIStatusError) -> float | None:
        value = exc.response.headers.get("retry-after") if exc.response is not None else None
        try:
            seconds = float(value) if value is not None else None
        except ValueError:
            return None  # an HTTP date: rare from LLM APIs; backoff instead
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            return None
        return min(seconds, self.backoff_max_s * 4)


@dataclass
class _Checked(Reply):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None


def read_reply(raw: bytes, mode: str) -> _Checked:
    """The reply text and usage of a chat completion body, each field checked; raises InvalidAnswer."""
    try:
        data = json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike: an HTML page, a truncated body
        raise InvalidAnswer("reply_not_json", f"the server's reply is not JSON ({_excerpt(raw)})") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise InvalidAnswer("reply_shape", f"the reply has no list of choices ({_excerpt(raw)})")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise InvalidAnswer("reply_shape", "choices[0].message is not an object")
    content = message.get("content")
    if isinstance(content, list):  # content parts, as some servers send them: the text parts joined
        if not all(isinstance(p, dict) and isinstance(p.get("text", ""), str) for p in content):
            raise InvalidAnswer("reply_shape", "choices[0].message.content is a list of non-text parts")
        content = "".join(p.get("text", "") for p in content)
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise InvalidAnswer("reply_shape", f"choices[0].message.content is a {type(content).__name__}, not text")
    if _has_surrogates(content):
        raise InvalidAnswer("surrogates", "the reply holds lone surrogates (not valid Unicode)")
    finish = choices[0].get("finish_reason")
    model = data.get("model")
    prompt, completion, cost = _usage(data.get("usage"))
    return _Checked(content, mode, finish if isinstance(finish, str) else None,
                    model if isinstance(model, str) else None, prompt, completion, cost)


def _usage(usage: Any) -> tuple[int, int, float | None]:
    """(prompt tokens, completion tokens, reported cost) from `usage`; absent = 0; nonsense = InvalidAnswer."""
    if usage is None:
        return 0, 0, None
    if not isinstance(usage, dict):
        raise InvalidAnswer("usage", f"usage is a {type(usage).__name__}, not an object")
    counts = []
    for key in ("prompt_tokens", "completion_tokens"):
        value = usage.get(key, 0)
        if value is None:
            value = 0
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or value < 0 or value != int(value):
            raise InvalidAnswer("usage", f"usage.{key}={value!r} is not a token count")
        counts.append(int(value))
    cost = usage.get("cost")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int | float)
                             or not math.isfinite(cost) or cost < 0):
        raise InvalidAnswer("usage", f"usage.cost={cost!r} is not an amount")
    return counts[0], counts[1], None if cost is None else float(cost)


def _extra_body(backend: Any) -> dict[str, Any]:
    """Request fields passed through from the config: OpenRouter's model fallbacks, provider routing, usage."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    def plain(value: Any) -> Any:
        return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value

    extra: dict[str, Any] = {}
    if backend.get("models"):
        extra["models"] = [str(backend.model), *[str(m) for m in plain(backend.models) if str(m) != str(backend.model)]]
    if backend.get("provider"):
        extra["provider"] = plain(backend.provider)
    if backend.get("usage_include"):
        extra["usage"] = {"include": True}
    return extra


def _refuses_format(exc: openai.APIStatusError) -> bool:
    if exc.status_code not in REFUSAL_STATUSES:
        return False
    text = str(exc).lower()
    with contextlib.suppress(Exception):  # a body that cannot be read names nothing
        text += " " + exc.response.text.lower()
    return any(word in text for word in REFUSAL_WORDS)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _excerpt(raw: bytes, limit: int = 60) -> str:
    return repr(raw[:limit].decode("utf-8", "replace")) + ("..." if len(raw) > limit else "")


def _short(exc: Exception, limit: int = 200) -> str:
    """The error's text on one line, cut to `limit`, with every secret masked."""
    text = mask(" ".join(str(exc).split()))
    return text if len(text) <= limit else text[:limit] + "..."
