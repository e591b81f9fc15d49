#!/usr/bin/env bash
# Creates .venv (or $AMELI_VENV) and installs ameli-ray with its test extras. Idempotent: a second
# run with an unchanged pyproject.toml does nothing. torch and torchvision are installed first and
# pinned together: an unpinned torchvision pulled in later can silently swap torch.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${AMELI_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${AMELI_TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"

stamp="$VENV/.ameli-installed"
want="$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "install: creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
echo "install: $TORCH_SPEC" >&2
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install -q $TORCH_SPEC
echo "install: ameli-ray and its dependencies" >&2
"$VENV/bin/python" -m pip install -q -e ".[test]"
echo "$want" > "$stamp"
echo "install: done ($VENV)" >&2
