"""One chat request to an OpenAI-compatible server, with retries: the transport half of the LLM backend.

`ChatClient.complete(messages)` sends one request through the `openai` package's AsyncOpenAI and returns
the reply text and its token usage. It asks for JSON by `response_format` json_schema; where the server
refuses that (HTTP 400 naming response_format), it falls back to json_object, then to plain text (the
JSON is then extracted from the text by llm_parse), once for the whole run. Rate limits (429) wait as long
as Retry-After says; 5xx, timeouts and connection errors back off exponentially with jitter; tries are
bounded. A wrong key (401/403) is fatal at once.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from lanbot.core.errors import LanbotError

MODES = ("json_schema", "json_object", "text")


class FatalBackendError(LanbotError, RuntimeError):
    """An error no retry can fix (bad key, unknown model, bad URL); the run stops with this message."""


class RequestFailed(LanbotError, RuntimeError):
    """One request failed after its tries; counted, the conversation is attempted again later."""


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
    fallbacks: list[str] = field(default_factory=list)


class ChatClient:
    """Async chat completions with bounded retries and the response-format fallback chain."""

    def __init__(self, backend: Any, api_key: str, schema: dict, rng: random.Random | None = None) -> None:
        self.model = str(backend.model)
        self.temperature = float(backend.temperature)
        self.max_tokens = backend.max_tokens
        self.max_tries = int(backend.max_tries)
        self.backoff_s = float(backend.backoff_s)
        self.backoff_max_s = float(backend.backoff_max_s)
        mode = str(backend.response_format)
        if mode not in MODES:
            raise FatalBackendError(f"backend.response_format={mode!r}; use one of {', '.join(MODES)}")
        self.mode = mode
        self.schema = schema
        self.rng = rng or random.Random()
        self.usage = Usage()
        # Retries are ours (Retry-After, jitter, counting), so the client's own are off.
        self.client = openai.AsyncOpenAI(
            base_url=str(backend.base_url), api_key=api_key, max_retries=0,
            timeout=float(backend.timeout_s),
        )

    async def close(self) -> None:
        await self.client.close()

    def _response_format(self) -> dict | None:
        if self.mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "conversation", "schema": self.schema}}
        if self.mode == "json_object":
            return {"type": "json_object"}
        return None

    async def complete(self, messages: list[dict]) -> tuple[str, str]:
        """The reply text of one request and the response mode it was asked in; raises RequestFailed."""
        last = ""
        for attempt in range(self.max_tries):
            if attempt:
                self.usage.retries += 1
            mode = self.mode
            kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature}
            if self.max_tokens:
                kwargs["max_tokens"] = int(self.max_tokens)
            if (fmt := self._response_format()) is not None:
                kwargs["response_format"] = fmt
            self.usage.requests += 1
            try:
                # The client's own POST, as chat.completions.create makes it, minus create's type-walk of
                # the request (about 1 ms of CPU a request, the bottleneck at concurrency 32).
                response = await self.client.post("/chat/completions", body=kwargs, cast_to=ChatCompletion)
            except openai.RateLimitError as exc:
                self.usage.rate_limited += 1
                last = f"429 rate limited: {_short(exc)}"
                await asyncio.sleep(self._retry_after(exc) or self._backoff(attempt))
                continue
            except openai.BadRequestError as exc:
                if mode != "text" and "response_format" in str(exc).lower():
                    self._fall_back(mode, exc)
                    continue  # a refused format is the server's answer, not the conversation's fault
                raise RequestFailed(f"400 bad request: {_short(exc)}") from None
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
                raise FatalBackendError(
                    f"{exc.status_code} from {self.client.base_url} (model {self.model!r}): {_short(exc)}; "
                    "check the key, backend.base_url and backend.model"
                ) from None
            except openai.APITimeoutError:
                self.usage.timeouts += 1
                last = "timed out"
                await asyncio.sleep(self._backoff(attempt))
                continue
            except openai.APIConnectionError as exc:
                last = f"connection error: {_short(exc)}"
                await asyncio.sleep(self._backoff(attempt))
                continue
            except openai.APIStatusError as exc:
                self.usage.server_errors += 1
                last = f"HTTP {exc.status_code}: {_short(exc)}"
                await asyncio.sleep(self._backoff(attempt))
                continue
            if response.usage is not None:
                self.usage.tokens_prompt += int(response.usage.prompt_tokens or 0)
                self.usage.tokens_completion += int(response.usage.completion_tokens or 0)
            text = response.choices[0].message.content if response.choices else None
            if not text:
                last = "empty reply"
                continue
            return text, mode
        raise RequestFailed(f"{self.max_tries} tries, last: {last}")

    def _fall_back(self, mode: str, exc: Exception) -> None:
        if self.mode == mode:  # other requests in flight may have fallen back already
            self.mode = MODES[MODES.index(mode) + 1]
            self.usage.fallbacks.append(f"{mode}->{self.mode}")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform in [base, base * 2**attempt], capped."""
        ceiling = min(self.backoff_max_s, self.backoff_s * 2**attempt)
        return self.rng.uniform(min(self.backoff_s, ceiling), ceiling)

    def _retry_after(self, exc: openai.APIStatusError) -> float | None:
        value = exc.response.headers.get("retry-after") if exc.response is not None else None
        try:
            return min(float(value), self.backoff_max_s * 4) if value is not None else None
        except ValueError:
            return None  # an HTTP date: rare from LLM APIs; backoff instead


def _short(exc: Exception, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."
