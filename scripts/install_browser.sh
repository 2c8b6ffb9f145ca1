#!/usr/bin/env bash
# Browser-test tools: Debian's chromium (apt) and the playwright Python package (pip).
# Idempotent and quiet. Never downloads a Playwright browser build: the tests drive
# /usr/bin/chromium through playwright's own bundled node driver.
#   STYLE_GUIDANCE_VENV  virtual environment to install playwright into (default .venv)
#   PLAYWRIGHT_SPEC      pip spec (default playwright==1.65.2)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${STYLE_GUIDANCE_VENV:-.venv}
PLAYWRIGHT_SPEC=${PLAYWRIGHT_SPEC:-playwright==1.65.2}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ ! -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null; }
  # Try without a package-list refresh first; refresh only if that fails.
  if ! apt_install 2>/dev/null; then
    $SUDO apt-get update -qq >/dev/null
    apt_install
  fi
fi
/usr/bin/chromium --version >/dev/null 2>&1 || { echo "install_browser: /usr/bin/chromium does not run" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "install_browser: no virtual environment at $VENV (run scripts/setup_env.sh first)" >&2
  exit 1
fi
want=${PLAYWRIGHT_SPEC#playwright==}
have=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("playwright"))' 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$PLAYWRIGHT_SPEC" 2> >(grep -v "^WARNING: Location" >&2)
fi
echo "install_browser: $(/usr/bin/chromium --version 2>/dev/null | head -1), playwright $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("playwright"))')"
