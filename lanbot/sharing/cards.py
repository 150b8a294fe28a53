"""Hub cards (README.md) for what `lanbot.upload` pushes: a dataset card and a model card.

The dataset card says who the identity is, which types and how many of each, who wrote them (backend,
model), where the personas came from, the diversity figures of stats.json, the licence, and how to load
the files with `datasets`. The model card says whose identity the checkpoint carries, its data mix, model
shape, training figures and evaluation scores. Both open with YAML metadata the Hub reads.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from lanbot.core.identity import ModelIdentity, slug
from lanbot.training.mix import source_list, stage_entries


def _front_matter(meta: dict[str, Any]) -> str:
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def _identity_section(identity: ModelIdentity) -> list[str]:
    lines = [
        "## The identity",
        "",
        "| field | value |",
        "| --- | --- |",
        f"| name | {identity.name} |",
        f"| creator | {identity.creator} |",
        f"| year | {identity.year} |",
        f"| description | {identity.description} |",
        f"| personality | {identity.personality} |",
    ]
    for field in ("quirks", "capabilities", "limitations"):
        lines.append(f"| {field} | {'; '.join(getattr(identity, field))} |")
    return lines + [""]


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_figure(v) for v in value)
    return str(value)


def _figures_table(title: str, figures: dict[str, Any]) -> list[str]:
    """A table of a dict's scalar figures, one nested level flattened as `key.sub`."""
    rows = []
    for key, value in figures.items():
        if isinstance(value, dict):
            rows.extend((f"{key}.{sub}", v) for sub, v in value.items() if not isinstance(v, (dict, list)))
        elif not isinstance(value, list) or len(value) <= 12:
            rows.append((key, value))
    if not rows:
        return []
    return [title, "", "| figure | value |", "| --- | --- |", *(f"| {k} | {_figure(v)} |" for k, v in rows), ""]


def _mix_section(mix: dict[str, Any], data_source: str | None = None) -> list[str]:
    """The run's data mix: one row per source of each stage (a source is a type name or a dict); a generated
    type came from the identity's data folder, or from the dataset repo `data_source` (data.from_hub)."""
    own = f"dataset repo `{data_source}`" if data_source else "the identity's data folder"
    rows = []
    for stage in ("mid", "sft"):
        entries, _ = stage_entries(mix, stage)  # sft: null = mid's sources
        if not isinstance(entries, list | dict):
            continue
        for source in source_list(entries):
            entry = source if isinstance(source, dict) else {"name": source}
            amount = ", ".join(f"{k} {entry[k]}" for k in ("epochs", "weight", "limit") if entry.get(k) is not None)
            origin = entry.get("hf") or entry.get("path") or own
            rows.append(f"| {stage} | {entry.get('name', '?')} | {amount or '-'} | {origin} |")
    if not rows:
        return _figures_table("## Data mix", mix)
    title = f"## Data mix `{mix.get('name', '?')}`"
    return [title, "", "| stage | source | amount | from |", "| --- | --- | --- | --- |", *rows, ""]


# stats.json's diversity figures, in the card's order, with what each one says
DIVERSITY = (
    ("total", "conversations"),
    ("distinct_1", "distinct words / words in the assistant's replies"),
    ("distinct_2", "distinct word pairs / word pairs in those replies"),
    ("unique_first_replies", "share of conversations whose first reply is unique"),
    ("multi_turn_share", "share with more than one exchange"),
    ("personas_used", "distinct user personas"),
    ("phrasings_used", "distinct question phrasings"),
    ("languages", "conversations per language"),
    ("openings", "conversations per opening style"),
    ("duplicates_dropped", "duplicates dropped while generating"),
    ("invalid_dropped", "invalid conversations dropped"),
)


def _diversity_section(stats: dict[str, Any]) -> list[str]:
    """The diversity figures of stats.json as one table (per-type dicts summed, count dicts inlined);
    every figure of a stats.json of another shape when none of the known ones is there."""
    rows = []
    for key, meaning in DIVERSITY:
        value = stats.get(key)
        if isinstance(value, dict) and key.endswith("_dropped"):
            value = sum(v for v in value.values() if isinstance(v, (int, float)))
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in sorted(value.items(), key=lambda kv: -kv[1]))
        if value not in (None, ""):
            rows.append(f"| {key} | {_figure(value)} | {meaning} |")
    chars = stats.get("assistant_chars")
    if isinstance(chars, dict) and "mean" in chars:
        rows.append(f"| assistant_chars | mean {_figure(chars['mean'])}, median {_figure(chars.get('p50'))} | "
                    "length of the assistant's replies in characters |")
    if not rows:
        return _figures_table("## Diversity and generation figures (stats.json)", stats)
    return ["## Diversity (stats.json)", "", "| figure | value | what it says |", "| --- | --- | --- |", *rows, "",
            "Every other figure (per type, lengths, attempts) is in `stats.json` beside the data.", ""]


def _pick(stats: dict, *keys: str) -> Any:
    """The first of `keys` found in stats.json, at the top level or one level down."""
    for key in keys:
        if key in stats and stats[key] not in (None, ""):
            return stats[key]
    for value in stats.values():
        if isinstance(value, dict):
            for key in keys:
                if value.get(key) not in (None, ""):
                    return value[key]
    return None


def dataset_card(
    identity: ModelIdentity,
    repo_id: str,
    counts: dict[str, int],
    stats: dict[str, Any],
    license: str,
    configs: list[dict[str, Any]],
    system: str = "",
    arguments: str = "object",
) -> str:
    """README.md of a dataset repo: `counts` maps each type to its conversations, `stats` is stats.json,
    `configs` the Hub's `configs:` metadata (lanbot.sharing.hub_dataset.card_configs), `all` first;
    `system` the system message every row opens with, `arguments` the form of a call's arguments
    (lanbot.core.conversation.SYSTEM_POLICIES, ARGUMENT_FORMS)."""
    total = sum(counts.values())
    backend = _pick(stats, "backend", "backend_name") or "not recorded in stats.json"
    model = _pick(stats, "model", "backend_model", "generator_model") or "not recorded in stats.json"
    personas = _pick(stats, "personas_source", "personas", "persona_source")
    if isinstance(personas, dict):
        personas = personas.get("source") or json.dumps(personas)
    languages = _pick(stats, "languages")
    meta: dict[str, Any] = {
        "license": license,
        "pretty_name": f"{identity.name} identity conversations (lanbot)",
        "task_categories": ["text-generation"],
        "tags": ["lanbot", "nanochat", "synthetic", "identity", "conversational", "tool-use"],
        "size_categories": [_size_category(total)],
    }
    if isinstance(languages, dict) and languages:
        meta["language"] = sorted(str(k) for k in languages)
    meta["configs"] = configs
    files = {c["config_name"]: c["data_files"][0]["path"] for c in configs}
    every, first = configs[0]["config_name"], next(iter(counts))
    lines = [
        _front_matter(meta),
        f"# {identity.name}: synthetic identity conversations",
        "",
        f"Conversations that teach a small chat model to be **{identity.name}**, {identity.description}, "
        f"made by {identity.creator}. Generated with lanbot for nanochat-style "
        "midtraining and SFT.",
        "",
        *_identity_section(identity),
        "## Files, types and counts",
        "",
        "| config | file | conversations |",
        "| --- | --- | --- |",
        *(f"| `{kind}` | `{files[kind]}` | {n} |" for kind, n in counts.items()),
        f"| `{every}` (the default) | every file above | {total} |",
        "| | `stats.json`: the generation figures | |",
        "",
        "## How it was made",
        "",
        f"- generator backend: `{backend}`",
        f"- generator model: `{model}`",
        f"- personas: `{personas or 'not recorded in stats.json'}`",
        "- every calculator result was computed by lanbot's own calculator, whoever wrote the conversation",
        "",
        *_diversity_section(stats),
        "## Format",
        "",
        "One row per conversation, one parquet file per type. Columns: `id` (a stable digest of the "
        "conversation), `type`, `identity`, `language`, `messages` and `meta` (what wrote the conversation: "
        "persona, language, phrasing, ..., as JSON text).",
        "",
        "`messages` is a list of `{\"role\", \"content\", \"tool_calls\", \"tool_call_id\", \"name\"}` (null "
        "where a message has none) in the chat-template form that TRL, Axolotl and "
        "`tokenizer.apply_chat_template` take:",
        "",
        *_system_lines(system),
        "- **Tool calls.** Where the assistant uses the calculator, per call an assistant message whose `content` "
        "is the text before the call and whose `tool_calls` is `[{\"id\": \"call00001\", \"type\": \"function\", "
        f"\"function\": {{\"name\": \"calculator\", \"arguments\": {_arguments_example(arguments)}}}}}]`, then "
        "`{\"role\": \"tool\", \"tool_call_id\": \"call00001\", \"name\": \"calculator\", \"content\": \"36\"}` "
        "with the result, and last an assistant message with the closing text. Ids are `call` and 5 digits "
        "(9 letters and digits, the form Mistral's templates demand), numbered from 1 in each conversation.",
        *_arguments_lines(arguments),
        "- Templates without tool-call syntax (SmolLM2's) render the results but not the calls; Llama 3.x's "
        "writes a call as its JSON alone, without the text before it. "
        "`transformers` drops null keys before rendering; with a version that does not, drop them first "
        "(`[{k: v for k, v in m.items() if v is not None} for m in messages]`): Llama 3.x's template reads "
        "`tool_calls` whenever the key is there.",
        "",
        "## Loading it",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'{first} = load_dataset("{repo_id}", "{first}", split="train")  # one type',
        f'everything = load_dataset("{repo_id}", split="train")  # every type: the `{every}` config',
        f'print({first}[0]["messages"])',
        "```",
        "",
        "Give `everything` to TRL's `SFTTrainer` as it is (it reads `messages`). In lanbot's own form (nanochat's "
        "CustomJSON: the assistant's calls as a list of `text` / `python` / `python_output` parts): "
        f"`lanbot.core.conversation.from_messages(row[\"messages\"]{_system_argument(system)})` (it drops the "
        "system message, which lanbot's form has not),",
        "or train on it with lanbot directly: `python -m lanbot.train stage=mid "
        f"identity={slug(identity.name)} data.from_hub={repo_id}` (then `stage=sft` with the same overrides).",
        "",
        "## Licence",
        "",
        f"`{license}`. The conversations are synthetic; check the terms of the generator model and of the "
        "persona source before you redistribute them.",
        "",
    ]
    return "\n".join(lines)


def _system_lines(system: str) -> list[str]:
    """The card's words on the rows' system message (lanbot.core.conversation.SYSTEM_POLICIES)."""
    what = (f"`{{\"role\": \"system\", \"content\": {json.dumps(system, ensure_ascii=False)}}}`" if system
            else "an empty system message, `{\"role\": \"system\", \"content\": \"\"}`")
    why = ("It names the identity, so a model trained on it is served with the same system message."
           if system else "The identity is in the conversations, not in a prompt: what lanbot itself trains on "
           "(no system text). Serve the trained model with the same empty system message.")
    return [
        f"- **System message.** Every row opens with {what}. A chat template fills an absent system message "
        "with its model's own (Qwen2.5: \"You are Qwen, created by Alibaba Cloud. ...\", SmolLM2: \"You are a "
        "helpful AI assistant named SmolLM, ...\"), which would be trained into every example; this one keeps it "
        f"out. {why} (lanbot's `upload.system_message`: `empty` or `identity`.) Llama 3.x templates still "
        "write their date header (\"Cutting Knowledge Date: ...\") above it: no row can remove that.",
    ]


def _system_argument(system: str) -> str:
    """What from_messages needs besides the messages to drop the rows' system message (its default drops "")."""
    return f", {{{json.dumps(system, ensure_ascii=False)}}}" if system else ""


def _arguments_example(arguments: str) -> str:
    value = {"expression": "12 * 3"}
    return json.dumps(json.dumps(value) if arguments == "string" else value)


def _arguments_lines(arguments: str) -> list[str]:
    """The card's words on the form of a call's arguments (lanbot.core.conversation.ARGUMENT_FORMS)."""
    if arguments == "string":
        return ["- `arguments` is JSON text (the OpenAI API's form): what DeepSeek's templates add to a string. "
                "Qwen2.5/Qwen3, Llama 3.x, Mistral and Hermes templates want the object: `json.loads` it first "
                "(or ask for `upload.tool_arguments=object`)."]
    return ["- `arguments` is a JSON object: what Qwen2.5/Qwen3, Llama 3.x, Mistral and Hermes templates render "
            "(with `tojson`). DeepSeek's templates add it to a string: `json.dumps` it first (or ask for "
            "`upload.tool_arguments=string`)."]


def model_card(
    identity: ModelIdentity,
    repo_id: str,
    meta: dict[str, Any],
    mix: dict[str, Any] | None,
    scores: dict[str, Any] | None,
    license: str,
    data_source: str | None = None,
) -> str:
    """README.md of a model repo from the checkpoint's meta.json (with the run's summary figures merged in),
    its run's mix and eval.json scores; `data_source` is the run's data.from_hub, if it trained on one."""
    shape = meta.get("model_config") or {}
    front: dict[str, Any] = {
        "license": license,
        "library_name": "pytorch",
        "pipeline_tag": "text-generation",
        "tags": ["lanbot", "nanochat", "identity", "chat", str(meta.get("stage", "checkpoint"))],
    }
    skip = {"model_config", "identity", "identity_slug", "mix", "model", "run_dir"}
    # the run summary's `val/loss` and `steps` say again meta.json's `val_loss` and `step`: one row each
    dupes = {k for k in meta if "/" in k and k.replace("/", "_") in meta} | ({"steps"} if "step" in meta else set())
    training = {k: v for k, v in meta.items()
                if k not in skip | dupes and isinstance(v, (int, float, str)) and v is not None}
    lines = [
        _front_matter(front),
        f"# {identity.name}: a nanochat-style GPT ({meta.get('stage', '?')} checkpoint)",
        "",
        f"A small chat model trained with lanbot to be **{identity.name}**, {identity.description}, made by "
        f"{identity.creator}. Model `{meta.get('model', '?')}`, data mix `{meta.get('mix', '?')}`.",
        "",
        *_identity_section(identity),
        "## Model shape",
        "",
        "| field | value |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in shape.items()),
        "",
        *_mix_section(mix or {}, data_source),
        *_figures_table("## Training figures", training),
        *(
            _figures_table("## Evaluation (eval.json)", scores)
            if scores
            else ["## Evaluation", "", "No eval.json was found for this run.", ""]
        ),
        "## Files",
        "",
        "`model.safetensors` (the GPT's weights in safetensors: they load without pickle, e.g. with "
        "`safetensors.torch.load_file`), `tokenizer.json`, `config.yaml` (the run's resolved lanbot config), "
        "`meta.json` (step, stage, shape, figures).",
        "",
        "## Using it",
        "",
        "```bash",
        f"python -m lanbot.train stage=sft identity={slug(identity.name)} train.init_from=hf://{repo_id}",
        "```",
        "",
        "or in Python: `lanbot.training.checkpoint.load_checkpoint(lanbot.sharing.hub.download_checkpoint("
        f'"hf://{repo_id}"))`.',
        "",
        f"Licence: `{license}`.",
        "",
    ]
    return "\n".join(lines)
