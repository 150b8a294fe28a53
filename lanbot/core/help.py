"""`--help` for each app: what it does and its examples (the app module's docstring), the config groups with
their options (the default first, schema entries left out) and where to read more.

Hydra's own help lists every ConfigStore entry (identity_schema among the identities) under a title of the task
function's name, the same 294 lines for every app; this one is the app's own. `--hydra-help` still shows Hydra's.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from lanbot.core.config import CONF_DIR


def groups(conf_dir: Path = CONF_DIR) -> dict[str, list[str]]:
    """{group: options}, the default first, from the config tree's folders and config.yaml's defaults."""
    import yaml

    defaults: dict[str, str] = {}
    for entry in yaml.safe_load((conf_dir / "config.yaml").read_text(encoding="utf-8")).get("defaults", []):
        if isinstance(entry, dict):
            (key, value), = entry.items()
            if not key.startswith("override ") and isinstance(value, str) and "${" not in value:
                defaults[key] = value
    found: dict[str, list[str]] = {}
    for folder in sorted(p for p in conf_dir.iterdir() if p.is_dir() and p.name != "hydra"):
        options = sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.endswith("_schema"))
        first = defaults.get(folder.name)
        found[folder.name] = [first, *(o for o in options if o != first)] if first in options else options
    return found


def app_help(app: str) -> str:
    """The help text of `python -m lanbot.<app>`."""
    doc = (importlib.import_module(f"lanbot.{app}").__doc__ or "").strip()
    title, _, body = doc.partition("\n")
    lines = [f"lanbot.{app}: {title}", "", body.strip("\n"), "", "Config groups (group=option, the default first):"]
    width = max(len(g) for g in groups())
    lines += [f"  {group:<{width}}  {', '.join(options)}" for group, options in groups().items()]
    lines += ["", "Any key can be set: key=value (see them all with --cfg job; resolved with --cfg job --resolve).",
              "Sweep with -m and comma-separated values: -m identity=lanbot,sage mix=default,no_identity.",
              "Hydra's own flags: --hydra-help.   Tab completion: eval \"$(lanbot-<app> -sc install=bash)\"."]
    return "\n".join(lines)


def print_help_if_asked(app: str, argv: list[str]) -> None:
    """`--help` / `-h`: this app's help on stdout, exit 0 (before Hydra, whose own help is --hydra-help)."""
    if "--help" in argv or "-h" in argv:
        print(app_help(app))
        sys.exit(0)
