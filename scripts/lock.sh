#!/usr/bin/env bash
# Refresh requirements/lock.txt to the newest releases, and keep it only if the suite passes on them.
#
#   bash scripts/lock.sh            # about 8 minutes on 2 cores: a fresh venv, the newest releases, the suite
#
# A fresh venv (.venv-lock) is set up with no lock (LANBOT_LOCK=none), so pip takes the newest release that
# pyproject.toml's ranges allow; its `pip freeze --all` becomes the candidate lock, the README's test command
# runs in that venv, and only on a pass is requirements/lock.txt replaced. Commit the new lock: an upgrade is
# a commit that passes CI, never something a fresh machine does on its own. .venv is left as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-lock
rm -rf "$VENV"
LANBOT_VENV=$VENV LANBOT_LOCK=none bash scripts/setup.sh
candidate=$(mktemp)
{
  echo "# The versions the suite last passed with: made by scripts/lock.sh on $(date -u +%F)"
  echo "# ($($VENV/bin/python -c 'import platform; print("Python", platform.python_version(), platform.system(), platform.machine())')),"
  echo "# used as pip constraints by scripts/setup.sh. torch is the version only: setup.sh takes the CPU or CUDA"
  echo "# build of it. Do not edit by hand; run scripts/lock.sh and commit the result."
  # lanbot itself is the editable install; a local version tag (+cpu, +cu128) names a build, not a version
  "$VENV"/bin/python -m pip freeze --all --exclude-editable | grep -v -i '^lanbot' | sed -E 's/^(torch==[^+]+)\+.*/\1/'
} > "$candidate"
echo "candidate lock: $(grep -vc '^#' "$candidate") packages; running the suite on them"
if WANDB_MODE=offline "$VENV"/bin/python -m pytest -q; then
  mv "$candidate" requirements/lock.txt
  echo "requirements/lock.txt refreshed; git diff requirements/lock.txt shows what moved; commit it"
else
  echo "the suite failed on the newest releases: requirements/lock.txt is unchanged; the candidate is $candidate" >&2
  exit 1
fi
