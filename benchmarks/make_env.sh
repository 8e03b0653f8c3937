#!/usr/bin/env bash
# Build a separate virtual environment for the benchmarks: minigrad (editable) plus the peer engines of
# benchmarks/requirements.txt, so the peers never enter minigrad's own environment or dependencies.
#   bash benchmarks/make_env.sh [ENV_DIR]        then   ENV_DIR/bin/python -m benchmarks
# On a GPU machine add CuPy and a CUDA build of PyTorch to that environment yourself.
set -euo pipefail
cd "$(dirname "$0")/.."
env_dir=${1:-.venv-bench}
python3 -m venv "$env_dir"
"$env_dir/bin/python" -m pip install -q -e . -r benchmarks/requirements.txt
"$env_dir/bin/python" -c "import minigrad, torch, autograd, mygrad, micrograd, torchcrf; print('benchmark environment ready')"
echo "run: $env_dir/bin/python -m benchmarks"
