"""The generation backends are a registry keyed by the backend config's `kind`: a toy backend registered here
with a config node of its own generates a real data folder through lanbot.generation.generate_data, no lanbot file
edited; an unknown kind is one line naming the field and the kinds there are."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hydra.core.config_store import ConfigStore
from rich.console import Console

from lanbot.core.config import compose_config
from lanbot.core.conversation import validate
from lanbot.core.layout import COMBINED_FILE, conversations_file
from lanbot.generation.backends import BACKENDS, Backend, GenerationError, backend_for
from lanbot.generation.generate_data import check_plan_size, generate

# the toy's config file: what conf/backend/toy.yaml would hold
ConfigStore.instance().store(group="backend", name="toy", node={"name": "toy", "kind": "toy", "model": "echo"})


def toy_backend(calls: list[str], refuse: bool = False) -> Backend:
    def check(backend_cfg: Any) -> None:
        calls.append("check")
        if refuse:
            raise GenerationError("backend toy: no TOY_KEY set; export TOY_KEY=...")

    def write(cfg: Any, identity: Any, personas: list[dict], folder: Any, missing: dict[str, int],
              tracker: Any = None, console: Any = None) -> dict[str, Any]:
        calls.append("write")
        written = 0
        for kind, want in missing.items():
            for i in range(want):
                conversation = [{"role": "user", "content": f"Who are you? (question {i})"},
                                {"role": "assistant", "content": f"I am {identity.name}, answer {i}."}]
                assert validate(conversation, kind, identity.name) == []
                written += folder.add(kind, conversation, {"index": i, "writer": "toy"})
        return {"backend": "toy", "model": str(cfg.backend.model), "written": written, "invalid": {},
                "invalid_reasons": {}, "conversations_per_s": None}

    return Backend("toy", check, write, seconds=lambda backend_cfg, n: 3.0 * n, requests=True)


def test_a_registered_toy_backend_generates_a_data_folder(tmp_path: Path, monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setitem(BACKENDS, "toy", toy_backend(calls))
    cfg = compose_config([f"paths.root={tmp_path}", "logger=none", "backend=toy", "data=identity", "data.count=4"])
    assert backend_for(cfg.backend) is BACKENDS["toy"]
    stats = generate(cfg, tmp_path / "run", console=Console(file=io.StringIO()))
    assert calls == ["check", "write"]
    folder = tmp_path / "data" / "lanbot"
    rows = [json.loads(line) for line in (folder / conversations_file("identity")).read_text().splitlines()]
    assert [r[1]["content"] for r in rows] == [f"I am LanBot, answer {i}." for i in range(4)]
    assert len((folder / COMBINED_FILE).read_text().splitlines()) == 4
    assert stats["backend"] == "toy" and stats["counts"]["identity"] == 4
    # the plan's estimate is the backend's own, and a backend of requests names its model in the warning
    estimate = check_plan_size(cfg.data, cfg.backend, {"identity": 10}, tmp_path / "fresh")
    assert estimate["seconds"] == 30.0
    with pytest.raises(GenerationError, match="with backend toy, at least 300,000 requests to echo"):
        check_plan_size(cfg.data, cfg.backend, {"identity": 300_000}, tmp_path / "fresh")


def test_the_backends_check_stops_the_run_before_anything_is_written(tmp_path: Path, monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setitem(BACKENDS, "toy", toy_backend(calls, refuse=True))
    cfg = compose_config([f"paths.root={tmp_path}", "logger=none", "backend=toy", "data=identity", "data.count=2"])
    with pytest.raises(GenerationError, match="no TOY_KEY set"):
        generate(cfg, tmp_path / "run", console=Console(file=io.StringIO()))
    assert calls == ["check"] and not (tmp_path / "data").exists()


def test_the_shipped_backends_are_found_by_kind_and_an_unknown_kind_is_one_line(tmp_path: Path) -> None:
    template = backend_for(compose_config(["backend=template"]).backend)
    llm = backend_for(compose_config(["backend=local"]).backend)
    assert (template.kind, template.requests, llm.kind, llm.requests) == ("template", False, "llm", True)
    with pytest.raises(GenerationError) as caught:
        backend_for(compose_config(["backend=template", "backend.kind=teplate"]).backend)
    message = str(caught.value)
    assert "\n" not in message and "backend.kind='teplate'" in message and "llm, template" in message
