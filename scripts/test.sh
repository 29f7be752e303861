#!/usr/bin/env bash
# Installs everything the test suite needs, then runs all of it.
#   system: redis-server, chromium (Debian packages; installed only when missing)
#   python: a virtualenv in .venv with hubbub and its [test] extras
# Extra arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

# node tools of the contract tests (AsyncAPI schema, ajv, tsc); without node those tests skip
if command -v npm >/dev/null 2>&1; then
  npm install --prefix tests/contract --no-audit --no-fund --silent
fi

exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
