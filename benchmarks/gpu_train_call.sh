#!/usr/bin/env bash
# One `device` call of issue 8's GPU training (benchmarks/train_on_gpu.py), packaged for the tool's limits
# (at most 8 files come back, 16 MiB each): the bf16 model's shards alone, everything else in meta.tar.
# Here, first (the wheels stay out of git; the device image lacks datasets and has transformers 5.17):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     transformers==5.24.0 regex==2026.11.19 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0
# Then the call: run(command="bash benchmarks/gpu_train_call.sh 270", carry=[".whl"], timeout_s=540).
# Usage: bash benchmarks/gpu_train_call.sh [budget_s] [extra train_on_gpu.py options ...]
set -uo pipefail
budget=${1:-270}
shift || true
out=${OUT:-gpu_train_results}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=src:/tmp/site PYTHONUNBUFFERED=1
timeout $((budget + 160)) python3 benchmarks/train_on_gpu.py "$out/run" --budget_s "$budget" --batch 128 --evals 8 \
  --seed 14 "$@" -- --diffusion_block_size 4 --diffusion_loss_weight 2 --function_fraction 0.25 2>&1 \
  | grep --line-buffered -v -E "Writing|Loading weights" > "$out/train.log"
status=${PIPESTATUS[0]}
tail -5 "$out/train.log"
# A step with NaN gradients leaves nonfinite.json and its batch in run/ (its fp32 weights stay in /tmp:
# too large to come back, and the replay has already run here, on the device).
cd "$out" || exit 4
rm -f run/final_bf16/*.py
mv run/final_bf16/*.safetensors . 2>/dev/null
tar cf meta.tar -C run . && rm -rf run || { echo "packaging the results failed"; exit 4; }
ls -la
exit "$status"
