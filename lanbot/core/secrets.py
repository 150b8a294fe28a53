"""API keys, read from the environment or a `.env` file at the moment they are needed; never stored.

The key's *name* (e.g. `OPENROUTER_API_KEY`) is what the config holds (`backend.api_key_env`); the value is
looked up here, each call, so it never enters the composed config, `.hydra/`, logs or wandb.

    >>> api_key("OPENROUTER_API_KEY")  # raises MissingKeyError naming the variable if unset
    >>> mask("server said: bad key sk-or-123...")  # every key read here (or remembered) -> "***"

A server may echo the key in an error body; whatever lanbot prints passes through `mask`, which replaces
every secret this process has read (kept in memory only, never written).
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

from lanbot.core.errors import LanbotError

MASK = "***"
MIN_SECRET = 8  # shorter values ("x", "no-key") are placeholders, not secrets: masking them would garble text
_SECRETS: set[str] = set()


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
    remember_secret(value)
    return value


def remember_secret(value: str | None) -> None:
    """Mask `value` in everything `mask` sees from now on (in this process)."""
    if value and len(value) >= MIN_SECRET:
        _SECRETS.add(value)


def mask(text: str) -> str:
    """`text` with every remembered secret replaced by ***, longest first (a key may contain another)."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text
