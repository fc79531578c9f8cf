#!/usr/bin/env bash
# Issue 11's GPU check: one script, within 8 minutes on one GPU, from a bare checkout (PYTHONPATH=src,
# nothing installed beyond torch + transformers + pytest). Part 1 (test_cuda.py and test_device_readiness.py
# only) ran once on an H200 (2026-11-30, MODEL_CARD.md "GPU session"): one failure, the static cache's
# compiled BLT-D steps, whose traceback the shortened log lost; the tests' full log now goes to a file.
# Parts 2-3 have not completed on a GPU yet.
#   1. the tests that matter on a device: tests/test_cuda.py (decoders in fp32 / bf16, exactness,
#      a bf16 training step), then the generation and device-readiness tests;
#   2. a bf16 speed benchmark on a random BLT-1B-shaped model (global 24 x 2048, local 1024, 500k hash
#      rows; random weights: speed only): our AR, BLT-S k=4 and BLT-D-8 against transformers'
#      BltForCausalLM, bytes/s and the weight traffic as a share of the H200's ~4.8 TB/s;
#   3. the same with the static cache's compiled steps (mode="reduce-overhead": CUDA graphs).
# Usage: bash benchmarks/gpu_check.sh [results_dir]
set -uo pipefail
export PYTHONUNBUFFERED=1  # a command stopped by its timeout still leaves its log
out=${1:-${OUT:-gpu_check_results}}
mkdir -p "$out"
export PYTHONPATH=src
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
  | tee -a "$out/gpu.txt"
timeout 180 python -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_device_readiness.py \
  tests/test_generation.py 2>&1 | tee "$out/tests_full.txt" | tail -30 | tee "$out/tests.txt"
timeout 150 python benchmarks/bench_generate.py --preset 1b --device cuda --dtype bfloat16 --prompts 4 --new-bytes 256 \
  --settings ar blt_s_k4 blt_d_conf0.7 --block-size 8 --peak-gbps 4800 --out-dir "$out" 2>&1 | tail -12 \
  | tee "$out/bench_1b_bf16.txt"
# 3. the static cache's compiled steps (CUDA graphs) on the same model: compiling counts against the budget
timeout 120 python benchmarks/bench_generate.py --preset 1b --device cuda --dtype bfloat16 --prompts 2 --new-bytes 256 \
  --settings ar ar_compiled blt_d_conf0.7_compiled --block-size 8 --peak-gbps 4800 --skip-transformers 2>&1 | tail -8 \
  | tee "$out/bench_1b_bf16_compiled.txt"
