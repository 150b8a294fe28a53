"""Mix sources: parsing, validation split, epochs and weights, local Hugging Face files."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lanbot.core.config import compose_config
from lanbot.training.mix import (
    MixError,
    Source,
    SourceData,
    draw_counts,
    load_source,
    mixture,
    parse_sources,
    split_validation,
    stage_entries,
)


def test_every_mix_option_parses_and_no_identity_only_validates_identity():
    for name in ("default", "identity_heavy", "identity_light", "no_identity", "nanochat"):
        cfg = compose_config([f"mix={name}"])
        for stage in ("mid", "sft"):
            sources = {s.name: s for s in parse_sources(stage_entries(cfg.mix, stage)[0], stage)}
            assert "identity" in sources
    epochs = {n: parse_sources(compose_config([f"mix={n}"]).mix.mid, "m")[0].epochs
              for n in ("default", "identity_heavy", "identity_light", "no_identity")}
    assert epochs == {"default": 2, "identity_heavy": 4, "identity_light": 0.5, "no_identity": 0}


def test_the_control_takes_no_conversation_in_the_identitys_voice(tmp_path):
    # every trained generated type of mix=no_identity comes from the plain assistant's folder, not Sage's
    cfg = compose_config([f"paths.root={tmp_path}", "identity=sage", "mix=no_identity"])
    for stage in ("mid", "sft"):
        for src in parse_sources(stage_entries(cfg.mix, stage)[0], stage):
            if src.corpus is None and (src.epochs or src.weight):
                assert src.path == f"{tmp_path}/data/assistant/{src.name}_conversations.jsonl", src
    with pytest.raises(MixError, match="generate it with python -m lanbot.generate identity=assistant"):
        load_source(parse_sources(cfg.mix.mid, "mix.mid")[1], tmp_path / "data" / "sage", "sage")


def test_bad_entries_are_named():
    with pytest.raises(MixError, match=r"mix.mid\[0\]: unknown source 'nope'"):
        parse_sources([{"name": "nope", "epochs": 1}], "mix.mid")
    with pytest.raises(MixError, match="weight=-1"):
        parse_sources([{"name": "identity", "weight": -1}], "mix.mid")
    with pytest.raises(MixError, match="exactly one"):
        parse_sources([{"name": "identity", "weight": 1, "epochs": 1}], "mix.mid")


def test_split_is_seeded_disjoint_and_epochs_and_weights_count():
    convs = [[{"role": "user", "content": str(i)}, {"role": "assistant", "content": "x"}] for i in range(100)]
    train, val = split_validation(convs, "identity", 1, 0.05, 1, 200)
    assert len(val) == 5 and len(train) == 95 and not any(v in train for v in val)
    assert split_validation(convs, "identity", 1, 0.05, 1, 200)[1] == val
    assert split_validation(convs, "identity", 2, 0.05, 1, 200)[1] != val
    data = [SourceData(Source("identity", epochs=2.5), train, val), SourceData(Source("reasoning", epochs=0), train, val),
            SourceData(Source("a", weight=3), train[:40], []), SourceData(Source("b", weight=1), train[:40], [])]
    counts = draw_counts(data)
    assert counts == {"identity": 238, "reasoning": 0, "a": 60, "b": 20}
    drawn = mixture(data, seed=0)
    assert len(drawn) == 318 and mixture(data, seed=0) == drawn and mixture(data, seed=0, epoch=1) != drawn
    assert all(c not in val for _, c in drawn)


def test_hf_sources_from_local_files(tmp_path):
    gsm = tmp_path / "gsm8k.parquet"
    pq.write_table(pa.table({"question": ["2 apples and 3 more?"], "answer": ["2+3=<<2+3=5>>5 apples\n#### 5"]}), gsm)
    src = parse_sources([{"name": "gsm8k", "hf": "openai/gsm8k", "path": str(gsm), "format": "gsm8k", "epochs": 1}], "m")[0]
    conv = load_source(src, tmp_path, "lanbot")[0]
    parts = conv[1]["content"]
    assert {"type": "python", "text": "2+3"} in parts and {"type": "python_output", "text": "5"} in parts
    smol = tmp_path / "smol.jsonl"
    smol.write_text(json.dumps({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}) + "\n")
    src = parse_sources([{"name": "smoltalk", "hf": "x/smol", "path": str(smol), "format": "smoltalk", "epochs": 1}], "m")[0]
    assert load_source(src, tmp_path, "lanbot")[0][0] == {"role": "user", "content": "Be brief.\n\nhi"}
    mmlu = tmp_path / "mmlu.parquet"
    pq.write_table(pa.table({"question": ["2+2?"], "choices": [["3", "4"]], "answer": [1], "subject": ["m"]}), mmlu)
    src = parse_sources([{"name": "mmlu", "hf": "cais/mmlu", "path": str(mmlu), "format": "mmlu", "epochs": 1}], "m")[0]
    assert load_source(src, tmp_path, "lanbot")[0][1]["content"] == "B"


def test_custom_jsonl_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]\nnot json\n')
    src = parse_sources([{"name": "mine", "path": str(path), "epochs": 1}], "m")[0]
    with pytest.raises(MixError, match="mine.jsonl:2"):
        load_source(src, tmp_path, "lanbot")
