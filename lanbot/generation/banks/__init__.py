"""Word and question banks shared by both generation backends and the persona loader (YAML files here)."""

from pathlib import Path

BANKS_DIR = Path(__file__).resolve().parent
