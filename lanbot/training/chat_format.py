"""Chat formats: how a conversation becomes tokens, one owner for the markers of every family lanbot trains.

A format names the text around each role (special tokens written by their spelling), the stop token, and how
the calculator's call is written. `render_conversation` (tokenizer.py) and the engine read only this, so a model
family with another chat format is one more `ChatFormat` here and one line in `FORMATS`.

- `nanochat`: lanbot's own base and nanochat checkpoints. `<|user_start|>…<|user_end|>`, the calculator as
  `<|python_start|>17*23<|python_end|><|output_start|>391<|output_end|>`; a system message is folded into the
  first user turn, as nanochat does.
- `chatml`: SmolLM2 and Qwen2/2.5. `<|im_start|>role\\n…<|im_end|>\\n`. The calculator is a Hermes-style call
  `<tool_call>{"name": "calculator", "arguments": {"expression": "17*23"}}</tool_call>` and its result is forced
  inline as `<tool_response>391</tool_response>` in the same assistant turn, so decoding stays one loop (the
  Hugging Face rows lanbot uploads carry standard `tool_calls` messages instead). SmolLM2 has no tool tokens:
  the four are added (`missing_tokens`), their embeddings initialised from the tokens that spell them.
- `llama3`: Llama 3.x. `<|start_header_id|>role<|end_header_id|>\\n\\n…<|eot_id|>`, the same tool markers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from lanbot.core.errors import LanbotError

CALCULATOR = "calculator"


class ChatFormatError(LanbotError, ValueError):
    """A chat template lanbot cannot map to a format it trains, or a tool call it cannot read."""


@dataclass(frozen=True)
class ChatFormat:
    """The markers of one chat format. Marker texts may mix special tokens (by spelling) and plain text."""

    name: str
    specials: tuple[str, ...]  # the single-id tokens the markers use; each must exist (or be added)
    bos: str  # written once before a conversation ("" for none)
    user: tuple[str, str]
    assistant: tuple[str, str]  # (opening, stop token): the stop is trained on, the opening is not
    after_turn: str  # after the stop, not trained (ChatML's newline)
    call: tuple[str, str]
    output: tuple[str, str]
    system: tuple[str, str] | None = None  # None: folded into the first user message
    stops_also: tuple[str, ...] = ()  # tokens that end a reply when a model writes them by mistake
    document_start: str = "<|bos|>"  # what separates documents in packed corpus rows (capability's bpb)
    json_calls: bool = False  # the call holds {"name": "calculator", "arguments": {"expression": ...}}

    @property
    def stop(self) -> str:
        return self.assistant[1]

    def call_text(self, expression: str) -> str:
        """What the model writes between the call markers for `expression`."""
        if not self.json_calls:
            return expression
        return json.dumps({"name": CALCULATOR, "arguments": {"expression": expression}}, ensure_ascii=False)

    def call_expression(self, text: str) -> str:
        """The expression inside a call the model wrote (the text itself where it is not a JSON call, so the
        calculator answers a malformed call with its own error, as it does in nanochat's format)."""
        if not self.json_calls:
            return text
        try:
            call = json.loads(text)
            expression = call["arguments"]["expression"]
        except (ValueError, TypeError, KeyError):
            return text.strip()
        return str(expression)


_TOOLS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")

NANOCHAT = ChatFormat(
    name="nanochat",
    specials=("<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
              "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>"),
    bos="<|bos|>",
    user=("<|user_start|>", "<|user_end|>"),
    assistant=("<|assistant_start|>", "<|assistant_end|>"),
    after_turn="",
    call=("<|python_start|>", "<|python_end|>"),
    output=("<|output_start|>", "<|output_end|>"),
    stops_also=("<|bos|>", "<|user_start|>"),
)
CHATML = ChatFormat(
    name="chatml",
    specials=("<|im_start|>", "<|im_end|>", *_TOOLS),
    bos="",
    system=("<|im_start|>system\n", "<|im_end|>\n"),
    user=("<|im_start|>user\n", "<|im_end|>\n"),
    assistant=("<|im_start|>assistant\n", "<|im_end|>"),
    after_turn="\n",
    call=("<tool_call>", "</tool_call>"),
    output=("<tool_response>", "</tool_response>"),
    stops_also=("<|im_start|>", "<|endoftext|>"),
    json_calls=True,
    document_start="<|endoftext|>",
)
LLAMA3 = ChatFormat(
    name="llama3",
    specials=("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", *_TOOLS),
    bos="<|begin_of_text|>",
    system=("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
    user=("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
    assistant=("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
    after_turn="",
    call=("<tool_call>", "</tool_call>"),
    output=("<tool_response>", "</tool_response>"),
    stops_also=("<|start_header_id|>", "<|end_of_text|>", "<|begin_of_text|>"),
    json_calls=True,
    document_start="<|begin_of_text|>",
)
FORMATS = {f.name: f for f in (NANOCHAT, CHATML, LLAMA3)}
# The markers by which a model's own chat template is recognised (Jinja source, as tokenizer_config.json has it).
_TEMPLATE_MARKS = (("<|im_start|>", CHATML), ("<|start_header_id|>", LLAMA3))


def chat_format(name: str) -> ChatFormat:
    """The format called `name`, or ChatFormatError naming the choices."""
    if name not in FORMATS:
        raise ChatFormatError(f"chat format {name!r} is not one lanbot renders: choose one of {', '.join(FORMATS)}")
    return FORMATS[name]


def format_of_template(template: str | None, where: str) -> ChatFormat:
    """The format a model's Jinja chat template writes (ChatML for SmolLM2 and Qwen2.5, Llama 3's headers)."""
    for mark, fmt in _TEMPLATE_MARKS:
        if template and mark in template:
            return fmt
    raise ChatFormatError(f"{where}: its chat template is neither ChatML (<|im_start|>) nor Llama 3's "
                          "(<|start_header_id|>), the formats lanbot trains in; start from a chat model of "
                          "those families (SmolLM2, Qwen2.5, Llama 3.2)")


def default_system_prompt(template: str | None) -> str | None:
    """The system prompt a chat template writes when a conversation has none (SmolLM2's "You are a helpful AI
    assistant named SmolLM, trained by Hugging Face", Qwen2.5's "You are Qwen, created by Alibaba Cloud…")."""
    if not template:
        return None
    found = re.search(r"<\|im_start\|>system(?:\\n|\n)([^<]{8,400}?)<\|im_end\|>", template)  # Jinja escape or newline
    return found[1].replace("\\n", "\n") if found else None


# The system prompts a deployed model meets (issue: an identity held only while SmolLM2's default was present).
# Training cycles through `train.system_prompts`; evaluation scores the identity under each (eval family
# `system_prompts`). `default` is the model's own (SmolLM2: "You are a helpful AI assistant named SmolLM, trained
# by Hugging Face"), which the identity must outlast, since llama.cpp and Ollama write it when a client sends none.
SYSTEM_FORMS = ("none", "empty", "default", "generic")
GENERIC_SYSTEM = "You are a helpful assistant."


def system_prompt(form: str, default: str | None) -> str | None:
    """The system message text of `form` (None: no system message; also `default` for a model without one)."""
    if form not in SYSTEM_FORMS:
        raise ChatFormatError(f"system prompt form {form!r} is not one of {', '.join(SYSTEM_FORMS)}")
    return {"none": None, "empty": "", "default": default, "generic": GENERIC_SYSTEM}[form]


def with_system(conversation: list[dict], text: str | None) -> list[dict]:
    """The conversation with `text` as its system message (one it already has is kept: the data chose it)."""
    if text is None or (conversation and conversation[0].get("role") == "system"):
        return conversation
    return [{"role": "system", "content": text}, *conversation]


def marker_pattern(fmt: ChatFormat) -> re.Pattern[str]:
    """A pattern that splits marker text at the format's special tokens (longest first)."""
    return re.compile("(" + "|".join(re.escape(s) for s in sorted(fmt.specials, key=len, reverse=True)) + ")")
