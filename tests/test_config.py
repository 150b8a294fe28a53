"""The composed config: every identity and data preset composes, with the issue's exact values and counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from lanbot.core.config import CONF_DIR, compose_config
from lanbot.core.conversation import TYPES
from lanbot.core.identity import IdentityError, ModelIdentity, to_identity
from lanbot.generation.generate_data import GenerationError, plan_targets

IDENTITIES = sorted(p.stem for p in (CONF_DIR / "identity").glob("*.yaml"))
PRESETS = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
DEFAULT_COUNTS = {"identity": 500, "tool_use": 400, "multi_step_tool": 300, "no_tool": 200,
                  "tool_planning": 200, "reasoning": 200}
PRESET_TYPES = {"all": list(TYPES), "identity": ["identity"], "reasoning": ["reasoning"],
                "agentic": ["tool_use", "multi_step_tool", "no_tool", "tool_planning"]}

EXPECTED = {
    "lanbot": dict(
        name="LanBot", creator="Gene Kobilansky", year=2025, description="a helpful AI agent",
        personality="direct, curious, and enjoys explaining complex topics simply",
        quirks=["occasionally uses analogies from everyday life",
                "admits uncertainty honestly rather than making things up"],
        capabilities=["answer questions", "help with coding", "do math calculations", "have conversations"],
        limitations=["knowledge cutoff means I may not know recent events",
                     "I can make mistakes, so please verify important information", "I work best in English"]),
    "sage": dict(
        name="Sage", creator="Your Company", year=2025, description="a patient teacher who loves explaining things",
        personality="thoughtful, patient, uses lots of examples, never condescending",
        quirks=["starts explanations with 'Great question!'", "uses analogies from cooking and gardening",
                "asks follow-up questions to check understanding"],
        capabilities=["explain complex topics simply", "provide step-by-step tutorials", "answer questions at any level"],
        limitations=["better at explaining than doing", "may oversimplify technical details"]),
    "dev": dict(
        name="Dev", creator="Your Company", year=2025, description="a practical coding assistant",
        personality="concise, practical, prefers showing code over explaining",
        quirks=["uses code examples in almost every response", "mentions edge cases and error handling",
                "suggests tests for code it writes"],
        capabilities=["write and debug code", "explain algorithms", "review code for issues"],
        limitations=["code should always be tested before production", "may not know the latest library versions"]),
    "yourbot": dict(
        name="YourBot", creator="Your Name", year=2025, description="a helpful AI assistant",
        personality="friendly, precise, and thoughtful",
        quirks=["uses simple analogies to explain complex topics", "admits uncertainty honestly"],
        capabilities=["answer questions", "help with coding", "do math calculations"],
        limitations=["knowledge has a cutoff date", "can make mistakes"]),
}


def test_the_groups_hold_what_the_issue_names():
    assert set(EXPECTED) <= set(IDENTITIES)
    assert set(PRESET_TYPES) == set(PRESETS)
    cfg = compose_config([])
    assert cfg.backend.name == "template" and cfg.personas.source == "builtin" and cfg.logger.kind == "wandb"
    assert cfg.logger.mode == "offline"


@pytest.mark.parametrize("name", IDENTITIES)
@pytest.mark.parametrize("preset", PRESETS)
def test_every_identity_and_preset_composes(tmp_path, name, preset):
    cfg = compose_config([f"identity={name}", f"data={preset}", f"paths.root={tmp_path}"])
    identity = to_identity(cfg.identity)
    assert isinstance(identity, ModelIdentity)
    if name in EXPECTED:
        fields = OmegaConf.to_container(cfg.identity)
        hints = fields.pop("quirk_hints")
        assert fields == EXPECTED[name]
        assert {h["quirk"] for h in hints} <= set(EXPECTED[name]["quirks"])
    assert Path(cfg.paths.data_dir) == tmp_path / "data" / identity.slug  # one folder per identity
    assert cfg.data.name == preset
    assert list(plan_targets(cfg.data)) == PRESET_TYPES[preset]  # data=all: types null, every registered type
    assert plan_targets(cfg.data) == {k: DEFAULT_COUNTS[k] for k in PRESET_TYPES[preset]}


@pytest.mark.parametrize("preset", PRESETS)
def test_data_count_sets_every_selected_type_and_adds_none(preset):
    cfg = compose_config([f"data={preset}", "data.count=7"])
    assert plan_targets(cfg.data) == {k: 7 for k in PRESET_TYPES[preset]}
    cfg = compose_config([f"data={preset}", "data.count=0"])
    assert plan_targets(cfg.data) == {k: 0 for k in PRESET_TYPES[preset]}


def test_one_type_count_and_types_override():
    cfg = compose_config(["data.counts.reasoning=3", "data.types=[reasoning,identity]"])
    assert plan_targets(cfg.data) == {"reasoning": 3, "identity": 500}


@pytest.mark.parametrize("override, message", [
    ("data.count=-1", r"data.count=-1 is not a count.*whole number >= 0"),
    ("data.counts.identity=-5", r"data.counts.identity=-5 is not a count"),
    ("data.count=lots", r"data.count='lots' is not a count"),
    ("data.types=[identity,chitchat]", r"unknown type\(s\) 'chitchat'; the types are identity, tool_use, "
                                       r"multi_step_tool, no_tool, tool_planning, reasoning"),
    ("data.types=[]", r"data.types is empty"),
    ("+data.counts.chitchat=5", r"data.counts has unknown type\(s\) 'chitchat'; the types are identity"),
])
def test_bad_counts_and_types_are_clear_errors(override, message):
    with pytest.raises(GenerationError, match=message):
        plan_targets(compose_config([override]).data)


def test_identity_fields_from_the_command_line_and_a_new_slug(tmp_path):
    cfg = compose_config(["identity=sage", "identity.name=My Bot 2", f"paths.root={tmp_path}"])
    assert cfg.identity.name == "My Bot 2" and cfg.identity.creator == "Your Company"
    assert Path(cfg.paths.data_dir) == tmp_path / "data" / "my-bot-2"


@pytest.mark.parametrize("override, field", [("identity.nmae=x", "nmae"), ("identity.year=soon", "year")])
def test_schema_refuses_unknown_fields_and_wrong_types(override, field):
    with pytest.raises(ConfigCompositionException) as err:
        compose_config([override])
    assert field in str(err.value) + str(err.value.__cause__)


@pytest.mark.parametrize("node, message", [
    ({"name": "Zed", "nickname": "Z"}, "bad field identity.nickname: Key 'nickname' not in 'ModelIdentity'"),
    ({"year": "soon"}, "bad field identity.year"),
    ({"capabilities": "fly"}, "bad field identity.capabilities"),
    (OmegaConf.create(["a list"]), "must be a mapping of fields"),
])
def test_to_identity_checks_the_schema_even_without_hydra(node, message):
    with pytest.raises(IdentityError, match=message):
        to_identity(node)
    assert to_identity({"name": "Zed"}) == ModelIdentity(name="Zed")


@pytest.mark.parametrize("override, key", [
    ("train.max_step=10", "max_step"),
    ("mix.mid.identity.epoch=3", "epoch"),
    ("backend.concurency=4", "concurency"),
])
def test_a_typo_in_typed_settings_fails_at_composition_naming_the_key(override, key):
    extra = ["backend=openai"] if override.startswith("backend.") else []
    with pytest.raises(Exception, match=key) as info:
        compose_config([*extra, override])
    assert "ConfigCompositionException" in type(info.value).__name__ or "Key" in str(info.value)


def test_mix_variants_inherit_and_sft_takes_mids_sources():
    heavy = compose_config(["mix=identity_heavy"]).mix
    base = compose_config(["mix=default"]).mix
    assert heavy.mid.identity.epochs == 4 and heavy.sft is None
    assert list(heavy.mid) == list(base.mid) and heavy.mid.reasoning == base.mid.reasoning
    sft = compose_config(["stage=sft"]).train
    mid = compose_config(["stage=mid"]).train
    assert sft.init_from == "mid" and sft.max_steps == 100 and sft.matrix_lr == mid.matrix_lr
