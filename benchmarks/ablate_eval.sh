#!/usr/bin/env bash
# Judge one ablation model (issue 8): line completion + degeneration for AR and BLT-D at confidence 0.7
# with the block size it was trained for. Usage: benchmarks/ablate_eval.sh MODEL_DIR OUT_PREFIX [lines] [prompts]
set -euo pipefail
model=$1; out=$2; lines=${3:-60}; prompts=${4:-6}
B=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['diffusion_block_size'])" "$model/config.json")
python benchmarks/line_completion.py "$model" --lines "$lines" --prompts "$prompts" --settings ar \
  --extra "blt_d_conf0.7:decoding=diffusion,block_size=$B,confidence_threshold=0.7" \
          "blt_d_conf0.7_arfirst:decoding=diffusion,block_size=$B,confidence_threshold=0.7,first_byte_from_ar=true,unmasking_fallback=most_confident" \
  --json "$out.json" --markdown "$out.md"
