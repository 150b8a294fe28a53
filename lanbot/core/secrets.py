"""API keys, read from the environment or a `.env` file at the moment they are needed; never stored.

The key's *name* (e.g. `OPENROUTER_API_KEY`) is what the config holds (`backend.api_key_env`); the value is
looked up here, each call, so it never enters the composed config, `.hydra/`, logs or wandb.

    >>> api_key("OPENROUTER_API_KEY")  # raises MissingKeyError naming the variable if unset
    >>> mask("server said: bad key sk-or-123...")  # every key read here (or remembered) -> "***"

A server may echo the key in an error body; whatever lanbot prints passes through `mask`, which replaces
every secret this process has read (kept in memory only, never written).

What lanbot writes is scanned before it is written or uploaded (`check_no_secret`, `find_secret_in_file`) for
the values of the known secret variables (`SECRET_NAME`: *_API_KEY, *_TOKEN, *_SECRET, *_PASSWORD, ... in the
environment or `.env`) and of every key read here; a hit stops the run with one line naming the variable and
the file, never the value. What lanbot's config and Hydra's files hold, and whatever lanbot prints, is also
checked for values shaped like a key (`KEY_SHAPE`: the common providers' prefixes), so a key typed into any
override is caught whether or not it is in the environment; a field that names a variable (`*_env`) must
hold a variable's name (`check_env_name`).
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from dotenv import dotenv_values

from lanbot.core.errors import LanbotError

MASK = "***"
MIN_SECRET = 8  # shorter values ("x", "no-key") are placeholders, not secrets: masking them would garble text
_SECRETS: set[str] = set()
# the names of variables that hold secrets: API keys, tokens, passwords (HF_TOKEN, WANDB_API_KEY, OPENAI_API_KEY, ...)
SECRET_NAME = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|SECRET_KEY|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)
_DOTENV_CACHE: dict[str, tuple[tuple[float, int] | None, dict[str, str]]] = {}
# Values shaped like the keys people paste: OpenAI / OpenRouter / Anthropic (sk-, sk-or-v1-, sk-ant-, sk-proj-),
# Hugging Face (hf_), GitHub (ghp_, gho_, ghs_, ghu_, github_pat_), Slack (xox?-), AWS (AKIA), Google (AIza),
# Groq (gsk_), Replicate (r8_), GitLab (glpat-), wandb (40 hex after a `local-` or alone is too common: left
# out). A run of at least 16 letters and digits after the prefix (the random part), so `sk-...` in prose, short
# placeholders and folder names such as `sk-learn-experiments-2026` are not keys.
KEY_SHAPE = re.compile(
    r"(?<![A-Za-z0-9_-])(?:sk-[A-Za-z0-9_-]*?[A-Za-z0-9]{16,}[A-Za-z0-9_-]*|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{16,}"
    r"|github_pat_[A-Za-z0-9_]{16,}|xox[abprs]-[A-Za-z0-9-]{16,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{30,}"
    r"|gsk_[A-Za-z0-9]{16,}|r8_[A-Za-z0-9]{16,}|glpat-[A-Za-z0-9_-]{16,})")
KEY_SHAPED = "a value shaped like a key"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class MissingKeyError(LanbotError, RuntimeError):
    """The API key's variable is set neither in the environment nor in `.env`; the message says how to set it."""


def api_key(env_var: str, dotenv_path: str | Path | None = None) -> str:
    """The value of `env_var` from the environment, else from `.env` (current folder); raises if unset."""
    value = os.environ.get(env_var, "").strip()
    if not value:
        value = dotenv(dotenv_path).get(env_var, "").strip()
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
    """`text` with every remembered secret and every key-shaped value replaced by ***, longest first (a key may
    contain another)."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return KEY_SHAPE.sub(MASK, text)


class MaskFilter(logging.Filter):
    """A logging filter that masks secrets and key-shaped values in every record (Hydra's console and job logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None  # known secrets too, not only keys read
        return True


def check_env_name(field: str, value: object) -> None:
    """A field that names an environment variable (`backend.api_key_env`) holds a name, never the key itself."""
    if value is None:
        return
    text = str(value)
    if not ENV_NAME.fullmatch(text) or KEY_SHAPE.search(text):
        raise SecretLeakError(
            f"{field} names the environment variable that holds the key (e.g. {field}=OPENROUTER_API_KEY); it was "
            f"given {'a key' if KEY_SHAPE.search(text) else 'something that is not a variable name'} "
            f"({mask(text)[:40]!s}). Put the key itself in that variable (export OPENROUTER_API_KEY=...) or .env")


class SecretLeakError(LanbotError, RuntimeError):
    """Something lanbot was about to write or upload holds a secret's value; nothing was written."""


DOTENV_MAX = 64 * 1024  # a .env holds a few KEY=value lines; anything larger is not one (and is not read whole)


class DotenvError(LanbotError, ValueError):
    """A `.env` that cannot be read as one: not a regular file, too large, or not UTF-8; the message names it."""


def _dotenv_text(path: Path) -> str | None:
    """The text of the .env at `path`; None where there is none, or it is a folder (a virtual environment is
    often called .env). A FIFO, socket or device (reading one could block forever), a file over DOTENV_MAX,
    or bytes that are not UTF-8 raise DotenvError naming the file."""
    fix = "make it a plain UTF-8 text file of KEY=value lines, or remove it"
    try:
        st = os.stat(path)  # a link to a regular file is read: people link a shared .env
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DotenvError(f"{path}: cannot be read ({exc.strerror or exc}); {fix}") from None
    if stat.S_ISDIR(st.st_mode):
        return None
    try:  # O_NONBLOCK: a FIFO swapped in after the stat cannot block the open
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DotenvError(f"{path}: cannot be read ({exc.strerror or exc}); {fix}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DotenvError(f"{path} is not a regular file (a FIFO, socket or device): lanbot reads API keys from "
                              f"a .env that is a file; {fix}")
        if st.st_size > DOTENV_MAX:
            raise DotenvError(f"{path} is {st.st_size:,} bytes, more than a .env's {DOTENV_MAX:,}: {fix}")
        data = os.read(fd, DOTENV_MAX + 1)
    except OSError as exc:
        raise DotenvError(f"{path}: cannot be read ({exc.strerror or exc}); {fix}") from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DotenvError(f"{path}:{line}: not UTF-8 text (byte {exc.start}); {fix}") from None


def dotenv(path: str | Path | None = None) -> dict[str, str]:
    """The variables set (non-empty) in the .env at `path` (default ./.env), read once per change of the file;
    {} where there is none. The one reader of .env files (api_key, known_secrets, the Hub token)."""
    path = Path(path) if path else Path.cwd() / ".env"
    try:
        st = os.stat(path)
        stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
    except OSError:
        stamp = None
    cached = _DOTENV_CACHE.get(str(path))
    if stamp is None or cached is None or cached[0] != stamp:
        text = _dotenv_text(path)
        values = {} if text is None else dotenv_values(stream=io.StringIO(text))
        cached = (stamp, {k: v for k, v in values.items() if v})
        if stamp is not None:
            _DOTENV_CACHE[str(path)] = cached
    return cached[1]


def known_secrets(strict: bool = True) -> list[tuple[str, str]]:
    """(variable, value) of every known secret, longest value first: secret-named variables of the environment
    and of ./.env, and keys read by `api_key` (named `a key lanbot read`). A broken .env raises DotenvError, or
    with `strict=False` (masking the line that reports it) is left out."""
    found: dict[str, str] = {}
    try:
        env_file = dotenv()
    except DotenvError:
        if strict:
            raise
        env_file = {}
    for source in (env_file, os.environ):
        for name, value in source.items():
            value = (value or "").strip()
            if SECRET_NAME.search(name) and len(value) >= MIN_SECRET:
                found[value] = name
    for value in _SECRETS:
        found.setdefault(value, "a key lanbot read")
    return sorted(((name, value) for value, name in found.items()), key=lambda p: len(p[1]), reverse=True)


def find_secret(text: str, secrets: Iterable[tuple[str, str]] | None = None, shapes: bool = False) -> str | None:
    """The variable whose secret value occurs in `text` (with `shapes`, KEY_SHAPED for a key-shaped value), or
    None. Data is checked by value only: a conversation may quote a made-up key; config and Hydra's files by
    shape too."""
    for name, value in known_secrets() if secrets is None else secrets:
        if value in text:
            return name
    return KEY_SHAPED if shapes and KEY_SHAPE.search(text) else None


def leak_error(name: str, where: str | os.PathLike, action: str = "write") -> SecretLeakError:
    what = name if name == KEY_SHAPED else f"the value of ${name}, a secret"
    return SecretLeakError(
        f"refusing to {action} {where}: it would hold {what}. Nothing was "
        f"{'written' if action == 'write' else 'sent'}; remove the secret from where it came from (an identity "
        "field, a config value or an override that holds the key itself) and run again")


def check_no_secret(text: str, where: str | os.PathLike, secrets: Iterable[tuple[str, str]] | None = None,
                    shapes: bool = False) -> None:
    """Raise SecretLeakError (naming the variable and `where`) if `text` holds a known secret's value (or, with
    `shapes`, a key-shaped value)."""
    name = find_secret(text, secrets, shapes)
    if name is not None:
        raise leak_error(name, where)


def find_secret_in_file(path: str | os.PathLike, secrets: Iterable[tuple[str, str]] | None = None) -> str | None:
    """The variable whose secret value occurs in the file's bytes (read in blocks, any size), or None."""
    needles = [(name, value.encode("utf-8")) for name, value in (known_secrets() if secrets is None else secrets)]
    if not needles:
        return None
    overlap = max(len(v) for _, v in needles) - 1
    tail = b""
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            window = tail + block
            for name, value in needles:
                if value in window:
                    return name
            tail = window[-overlap:] if overlap else b""
    return None


def find_secret_in_bytes(data: bytes, secrets: Iterable[tuple[str, str]] | None = None) -> str | None:
    """The variable whose secret value occurs in `data`, or None."""
    for name, value in known_secrets() if secrets is None else secrets:
        if value.encode("utf-8") in data:
            return name
    return None


def redact(text: str, replacement: str = MASK) -> str:
    """`text` with every known secret's value (and every remembered one) and every key-shaped value replaced by
    `replacement` (*** on the console; a YAML file takes a word: `creator: ***` would be an alias)."""
    for _, value in known_secrets(strict=False):
        text = text.replace(value, replacement)
    return KEY_SHAPE.sub(replacement, text)
