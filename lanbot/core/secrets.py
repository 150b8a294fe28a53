"""API keys, read from the environment or a `.env` file at the moment they are needed; never stored.

The key's *name* (e.g. `OPENROUTER_API_KEY`) is what the config holds (`backend.api_key_env`); the value is
looked up here, each call, so it never enters the composed config, `.hydra/`, logs or wandb.

    >>> api_key("OPENROUTER_API_KEY")  # raises MissingKeyError naming the variable if unset
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

from lanbot.core.errors import LanbotError


class MissingKeyError(LanbotError, RuntimeError):
    """The API key's variable is set neither in the environment nor in `.env`; the message says how to set it."""


def api_key(env_var: str, dotenv_path: str | Path | None = None) -> str:
    """The value of `env_var` from the environment, else from `.env` (current folder); raises if unset."""
    value = os.environ.get(env_var, "").strip()
    if not value:
        path = Path(dotenv_path) if dotenv_path else Path.cwd() / ".env"
        if path.is_file():
            value = (dotenv_values(path).get(env_var) or "").strip()
    if not value:
        raise MissingKeyError(
            f"no API key: the environment variable {env_var} is not set. Set it with "
            f"`export {env_var}=...` or put a line `{env_var}=...` in a .env file in the folder you run "
            "from (keep .env out of git); or use backend=template, which needs no key."
        )
    return value
