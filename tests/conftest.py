"""Fixtures of the LLM tests: the loopback server, and the fake key with a clean working folder.

A test module that talks to the server sets `pytestmark = pytest.mark.usefixtures("llm_key")`.
"""

from __future__ import annotations

import pytest
from llm_server import KEY, LLMServer


@pytest.fixture
def server():
    with LLMServer() as srv:
        yield srv


@pytest.fixture
def llm_key(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.chdir(tmp_path)  # no stray .env from the repo
