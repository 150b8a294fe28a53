"""A real OpenAI-compatible chat server on 127.0.0.1 for tests and benchmarks: POST /v1/chat/completions.

    with LLMServer() as server:            # server.base_url -> "http://127.0.0.1:<port>/v1"
        server.latency_s = 0.1
        server.fail_429 = 2                # the next 2 requests answer 429 with Retry-After
        ...

With `server.judge = fn` it also plays lanbot's evaluation judge: fn(messages) gives the verdicts JSON.
It plays the LLM: from the prompt it receives (the conversation type, the identity's name, the number of
exchanges) it composes a plausible valid answer in lanbot's JSON shape, with fresh numbers each time, and
returns `usage`. Switches make it misbehave: latency, 429 + Retry-After, 500, hanging past the client's
timeout, malformed JSON, wrong arithmetic, calculator calls in a type that forbids them or none in a type
that needs them, and refusing
json_schema (and json_object) response formats. It counts every request it answers.

Misbehaviours of real servers, one per URL path: `server.url("html", times=2)` is a base URL whose first 2
requests answer an HTML page, the rest normally (BEHAVIOURS lists them all: wrong shapes, non-JSON,
surrogates, negative usage, a server dripping a byte at a time, one that echoes the key, one that refuses
json_schema with HTTP 500 as llama-cpp-python 0.2.60 does, one that ignores the format and answers prose,
arithmetic that is wrong in ways repair must not misread, and OpenRouter's usage cost and model fallbacks).
"""

from __future__ import annotations

import collections
import json
import random
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY = "sk-test-SECRET-0123456789abcdef"  # the fake API key of the LLM tests: it must never be written anywhere


class LLMServer:
    """The server and its switches; counters are read by the tests."""

    def __init__(self, seed: int = 0) -> None:
        self.latency_s = 0.0
        self.fail_429 = 0              # next N requests: 429
        self.retry_after_s = 0.2
        self.fail_500 = 0              # next N requests: 500
        self.hang = 0                  # next N requests: sleep hang_s before answering
        self.hang_s = 2.0
        self.malformed = 0             # next N requests: reply text that is not JSON
        self.malformed_types: set[str] = set()  # the first request of each type named here: not JSON
        self.wrong_arithmetic = 0      # next N tool answers: stated result off by one
        self.wrong_type_tools = 0      # next N no-tool answers: contain a calculator call anyway
        self.missing_tools = 0         # next N tool answers: no calculator call at all
        self.always_wrong_type_tools = False
        self.judge = None              # a function(messages) -> dict: answers lanbot's judge prompts with it
        self.judged = 0                # judge requests answered
        self.reject_json_schema = False
        self.reject_json_object = False
        self.requests = 0              # every request received
        self.flooded = 0  # bytes the flood behaviours sent before the client hung up
        self.bad = collections.Counter()  # misbehaving answers sent, by behaviour (see BEHAVIOURS)
        self.seen: list[dict] = []     # per request: path, headers and body fields of interest (OpenRouter)
        self.drip_s = 0.5              # seconds between bytes of a dripping answer
        self.answered = 0              # 200 answers
        self.formats: list[str] = []   # response_format type of each 200 answer ("text" when absent)
        self.auth_headers: set[str] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.times_429: list[float] = []
        self.times_after_429: list[float] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._serial = 0
        self._httpd = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def url(self, behaviour: str, times: int = 1) -> str:
        """A base URL whose first `times` requests misbehave as `behaviour` (0 = every request)."""
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; known: {', '.join(BEHAVIOURS)}")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{behaviour}/{times}/v1"

    def start(self) -> LLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _take(self, switch: str) -> bool:
        """Consume one unit of a countdown switch."""
        with self._lock:
            if getattr(self, switch) > 0:
                setattr(self, switch, getattr(self, switch) - 1)
                return True
            return False

    def _take_type(self, prompt: str) -> bool:
        """True once per type in malformed_types: for the first request that asks for that type."""
        kind = _kind(prompt)
        with self._lock:
            if kind in self.malformed_types:
                self.malformed_types.discard(kind)
                return True
            return False

    def misbehave(self, path: str, body: dict, headers: Any) -> tuple[int, dict, Any] | None:
        """The answer of a misbehaving path (see BEHAVIOURS), or None to answer normally."""
        parts = path.strip("/").split("/")
        if len(parts) < 4 or parts[0] not in BEHAVIOURS:
            return None
        behaviour, times = parts[0], int(parts[1])
        fmt = body.get("response_format") or {}
        with self._lock:
            self.seen.append({"path": behaviour, "referer": headers.get("HTTP-Referer"),
                              "title": headers.get("X-Title"), "models": body.get("models"),
                              "provider": body.get("provider"), "usage": body.get("usage"),
                              "max_tokens": body.get("max_tokens"), "format": fmt.get("type", "text"),
                              "schema": "schema" in fmt or "json_schema" in fmt,
                              "schema_body": fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema"),
                              "prompt": "\n".join(str(m.get("content", "")) for m in body.get("messages", []))})
        if behaviour == "record":  # a well-behaved server that records what it was asked
            return None
        if behaviour in ("openrouter", "prose", "refuse-500", "refuse-422"):  # how the server always is
            return self._always(behaviour, body, headers, fmt)
        with self._lock:
            if times and self.bad[behaviour] >= times:
                return None
            self.bad[behaviour] += 1
        if behaviour == "drip":
            return 200, {"X-Drip": str(self.drip_s)}, self.answer(body)
        if behaviour in ("flood", "flood-sse"):  # a body that never ends: whitespace, or SSE keep-alives
            return 200, {"X-Flood": behaviour}, b""
        if behaviour == "echo-key":
            return 401, {}, _error(f"invalid key {headers.get('Authorization', '')}", "invalid_api_key")
        if behaviour == "echo-key-500":
            return 500, {}, _error(f"upstream refused {headers.get('Authorization', '')}", "server_error")
        raw = {
            "truncated-json": b'{"id": "x", "choices": [{"message": {"content": "{\\"mess',
            "html": b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
        }
        if behaviour in raw:
            return 200, {}, raw[behaviour]
        reply = self.answer(body)
        message = reply["choices"][0]["message"]
        if behaviour == "choices-string":
            reply["choices"] = "oops"
        elif behaviour == "content-int":
            message["content"] = 42
        elif behaviour == "content-dict":
            message["content"] = {"messages": []}
        elif behaviour == "usage-string":
            reply["usage"]["prompt_tokens"] = "lots"
        elif behaviour == "usage-negative":
            reply["usage"]["prompt_tokens"], reply["usage"]["completion_tokens"] = -1000, -5
        elif behaviour == "surrogate-reply":  # a lone surrogate in the reply's own JSON string
            message["content"] = message["content"].replace("Hi!", "Hi \ud800!")
        elif behaviour in ("surrogate-expression", "wrong-result", "wrong-result-ambiguous", "text-arithmetic"):
            message["content"] = json.dumps(_crafted(behaviour))
        return 200, {}, reply

    def _always(self, behaviour: str, body: dict, headers: Any, fmt: dict) -> tuple[int, dict, Any] | None:
        kind = fmt.get("type", "text")
        if behaviour == "refuse-500" and kind == "json_schema":  # llama-cpp-python 0.2.60's own words
            return 500, {}, _error("1 validation error: {'type': 'literal_error', 'loc': ('body', "
                                   "'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\"}",
                                   "internal_server_error")
        if behaviour == "refuse-422" and ("schema" in fmt or "json_schema" in fmt):
            return 422, {}, {"detail": [{"loc": ["body", "response_format"], "msg": "schema not supported"}]}
        if behaviour == "prose" and kind != "text":  # ignores the format: chatty prose, no JSON at all
            with self._lock:
                self.bad[behaviour] += 1
            reply = self.answer(body)
            reply["choices"][0]["message"]["content"] = "I'd be glad to help with that conversation! Let me know."
            return 200, {}, reply
        if behaviour == "openrouter":  # a fallback model answers, and the cost is reported in usage
            reply = self.answer(body)
            models = body.get("models") or []
            reply["model"] = models[1] if len(models) > 1 else body.get("model")
            reply["usage"]["cost"] = round(reply["usage"]["total_tokens"] * 1e-6, 9)
            return 200, {}, reply
        return None

    def answer(self, body: dict) -> dict:
        """A normal 200 answer's JSON body (counted as answered)."""
        status, _, payload = self.handle(body, "", count=False)
        return payload

    def handle(self, body: dict, auth: str, count: bool = True) -> tuple[int, dict, dict]:
        """(status, headers, JSON body) for one request."""
        if not count:
            return self._answer(body)
        with self._lock:
            self.requests += 1
            self.auth_headers.add(auth)
            if self.times_429 and len(self.times_after_429) < len(self.times_429):
                self.times_after_429.append(time.monotonic())
        fmt = (body.get("response_format") or {}).get("type", "text")
        if self._take("fail_429"):
            with self._lock:
                self.times_429.append(time.monotonic())
            return 429, {"Retry-After": str(self.retry_after_s)}, _error("rate limited, slow down", "rate_limit")
        if self._take("fail_500"):
            return 500, {}, _error("internal error", "server_error")
        if self._take("hang"):
            time.sleep(self.hang_s)
        if (fmt == "json_schema" and self.reject_json_schema) or (fmt == "json_object" and self.reject_json_object):
            return 400, {}, _error(f"response_format type {fmt} is not supported by this model", "invalid_request")
        if self.latency_s:
            time.sleep(self.latency_s)
        return self._answer(body)

    def _answer(self, body: dict) -> tuple[int, dict, dict]:
        fmt = (body.get("response_format") or {}).get("type", "text")
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        if self.judge is not None and "judge of lanbot" in prompt:
            content = json.dumps(self.judge(body.get("messages", [])))
            with self._lock:
                self.judged += 1
        elif self._take("malformed") or self._take_type(prompt):  # decided first: never uses up another switch
            content = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "parts": [...and so on'
        else:
            content = self.compose(prompt)
        if fmt == "text":
            content = f"Sure! Here is the conversation:\n```json\n{content}\n```\nHope this helps."
        with self._lock:
            self.answered += 1
            self.formats.append(fmt)
        usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(content) // 4}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return 200, {}, {
            "id": f"chatcmpl-{self.answered}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "loopback"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": usage,
        }

    def compose(self, prompt: str) -> str:
        """A valid answer for the type and identity the prompt asks about, with fresh numbers."""
        kind = _kind(prompt)
        name = (re.search(r"- name: (.+)", prompt) or [None, "Assistant"])[1].strip()
        turns = int((re.search(r"Exchanges: (\d+)", prompt) or [None, "1"])[1])
        with self._lock:
            self._serial += 1
            serial = self._serial
            a, b, c = self._rng.randint(2, 999), self._rng.randint(2, 99), self._rng.randint(2, 50)
        # Each switch is decided once per answer (not per exchange), so that one unit = one bad answer.
        tool_kind = kind in ("tool_use", "multi_step_tool", "tool_planning")
        wrong = tool_kind and self._take("wrong_arithmetic")
        no_calls = tool_kind and self._take("missing_tools")
        stray_call = not tool_kind and (self.always_wrong_type_tools or self._take("wrong_type_tools"))
        messages = []
        for turn in range(turns):
            n = serial * 10 + turn
            messages.append({"role": "user", "content": f"Hi! Question {n}: what about {a} and {b}?"})
            parts = self._parts(kind, name, a + turn, b, c, n, wrong and turn == 0, stray_call and turn == 0)
            if no_calls:  # the arithmetic done "in the head": text parts only
                parts = [p for p in parts if p["type"] == "text"]
            messages.append({"role": "assistant", "parts": parts})
        return json.dumps({"messages": messages})

    def _parts(self, kind: str, name: str, a: int, b: int, c: int, n: int, wrong: bool,
               stray_call: bool) -> list[dict]:
        first = a * b
        claim = first + 1 if wrong else first
        if kind == "tool_use":
            return [{"type": "text", "text": f"Let me multiply {a} by {b} for case {n}."},
                    {"type": "calculator", "expression": f"{a} * {b}", "result": str(claim)},
                    {"type": "text", "text": f"The total is {claim}."}]
        if kind in ("multi_step_tool", "tool_planning"):
            plan = [{"type": "text", "text": f"Plan for case {n}: 1. multiply {a} by {b}. 2. add {c}."}]
            return [*(plan if kind == "tool_planning" else [{"type": "text", "text": f"First step, case {n}."}]),
                    {"type": "calculator", "expression": f"{a} * {b}", "result": str(claim)},
                    {"type": "text", "text": f"That gives {claim}. Now add {c}."},
                    {"type": "calculator", "expression": f"{first} + {c}", "result": str(first + c)},
                    {"type": "text", "text": f"So the answer is {first + c}."}]
        text = {
            "identity": f"I'm {name}, happy to help with case {n}.",
            "reasoning": f"Step 1: compare {a} and {b}. Step 2: {max(a, b)} is larger (case {n}).",
        }.get(kind, f"Here is a thoughtful answer about {a} and {b}, case {n}.")
        parts = [{"type": "text", "text": text}]
        if stray_call:
            parts.append({"type": "calculator", "expression": f"{a} + {b}", "result": str(a + b)})
        return parts


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog: 5 by default, which drops bursts of new connections


def _kind(prompt: str) -> str:
    """The conversation type a prompt asks for (no_tool when it names none)."""
    return (re.search(r'type "(\w+)"', prompt) or [None, "no_tool"])[1]


BEHAVIOURS = (
    "truncated-json", "html", "choices-string", "content-int", "content-dict", "usage-string", "usage-negative",
    "surrogate-reply", "surrogate-expression", "drip", "echo-key", "echo-key-500", "refuse-500", "refuse-422",
    "prose", "wrong-result", "wrong-result-ambiguous", "text-arithmetic", "openrouter", "record",
    "flood", "flood-sse",
)


def _crafted(behaviour: str) -> dict:
    """Hand-made answers for the arithmetic and surrogate behaviours (valid in every other way)."""
    def conv(user: str, *parts: dict) -> dict:
        return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "parts": list(parts)}]}

    def text(t: str) -> dict:
        return {"type": "text", "text": t}

    if behaviour == "surrogate-expression":
        return conv("How many a's in banana?", text("Let me count."),
                    {"type": "calculator", "expression": '"ban\ud800ana".count("a")', "result": "3"}, text("3."))
    if behaviour == "wrong-result":  # 17 * 23 is 391, not 381; "Step 1" and "year 1" are not the result
        return conv("Step 1 of my budget for year 1: what is 17 * 23?", text("Step 1: multiply."),
                    {"type": "calculator", "expression": "17 * 23", "result": "381"},
                    text("So 381 for year 1, step 1 done (381 in total)."))
    if behaviour == "wrong-result-ambiguous":  # 5 - 3 is 2, not 1; but "1" is everywhere: no safe repair
        return conv("I had 5 cats in year 1 and gave 3 away. How many now?", text("Step 1: subtract."),
                    {"type": "calculator", "expression": "5 - 3", "result": "1"}, text("You have 1 cat left."))
    return {"messages": [{"role": "user", "content": "What is 12 times 7, step by step?"},  # text-arithmetic
                         {"role": "assistant", "parts": [text("Step 1: 12*7 = 85. Step 2: so that is the answer, in year 1.")]}]}


def _error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "code": None}}


def _handler(server: LLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()  # headers and body go out in separate writes: no Nagle delay between them
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                return self._send(404, {}, _error(f"no route {self.path}", "not_found"))
            with server._lock:
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                answer = server.misbehave(self.path, body, self.headers)
                if answer is None:
                    answer = server.handle(body, self.headers.get("Authorization", ""))
                status, headers, payload = answer
            finally:
                with server._lock:
                    server.in_flight -= 1
            self._send(status, headers, payload)

        def _send(self, status: int, headers: dict, payload: Any) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            drip = float(headers.pop("X-Drip", 0) or 0)
            flood = headers.pop("X-Flood", "")
            if flood:
                return self._flood(flood)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if data.startswith(b"<") else "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if not drip:
                    self.wfile.write(data)
                    return
                for i in range(len(data)):  # one byte at a time: every read is quick, the answer never ends
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    time.sleep(drip)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def _flood(self, kind: str) -> None:
            """Stream forever (chunked, 64 KB at a time) until the client hangs up; counts bytes sent."""
            piece = (b"data: {}\n\n" * 6000)[:65536] if kind == "flood-sse" else b" " * 65536
            chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream" if kind == "flood-sse" else "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while True:
                    self.wfile.write(chunk)
                    with server._lock:
                        server.flooded += len(piece)
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True  # the client cut the stream

    return Handler


if __name__ == "__main__":  # by hand or from a benchmark: python tests/llm_server.py [latency_s]
    import sys

    with LLMServer() as s:
        s.latency_s = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
        print(s.base_url, flush=True)
        threading.Event().wait()
