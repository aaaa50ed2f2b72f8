#!/usr/bin/env bash
# Install everything the tests need (Python packages, the real editors), then run lint,
# type check and the test suite.
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k config -x
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

./scripts/install.sh
"$PYTHON" -m pip install --disable-pip-version-check -q -e ".[models,test]"
# The real-editor test's one-time setup (Chromium, Node 24, code-server, the VSIX); seconds when done.
./scripts/setup_vscode_e2e.sh

echo "== ruff"
"$PYTHON" -m ruff check server tests scripts
echo "== mypy"
"$PYTHON" -m mypy
echo "== pytest"
set +e
"$PYTHON" -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$code"
