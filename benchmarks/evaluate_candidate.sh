#!/usr/bin/env bash
# Everything a default-model candidate is judged by before it ships (issue 8; MODEL_CARD.md, "Stage 11"),
# measured on the bf16 file it would ship as. Usage:
#   benchmarks/evaluate_candidate.sh CHECKPOINT TAG [BASELINE_JSON]
#   e.g. benchmarks/evaluate_candidate.sh runs/default_v13/final stage13
# Writes runs/ship_TAG (the candidate as it would ship) and runs/eval_TAG/: held-out bpb against xz,
# `blt-hf eval`, the two values tests/test_shipped_model.py bounds, the larger sample (300 lines,
# 43 continuations, 48 headers; AR | both BLT-D settings in two 1-thread processes, merged), the paired comparisons against BASELINE_JSON (the shipped model's run)
# and against AR, the README prompt under every decoding, and last, on a machine with nothing else
# running, the speed runs of "Goals" (SPEED=0 skips them: the quality numbers do not depend on the machine's
# load, the speed runs do). About 18 min on two idle cores (stage 11, an AMD EPYC machine).
set -euo pipefail
ckpt=$1
tag=$2
baseline=${3:-benchmarks/results/larger_sample/stage14.json}  # the shipped model's larger sample
ship=runs/ship_$tag
out=runs/eval_$tag
mkdir -p "$out"
export OMP_NUM_THREADS=1
python benchmarks/ship_default_model.py "$ckpt" --bf16 --target "$ship"

python benchmarks/eval_heldout.py "$ship" --json "$out/heldout.json" > "$out/heldout.log" 2>&1 &
blt-hf eval "$ship" --seq_len 512 --max_rows 64 > "$out/blt_hf_eval.json" 2> "$out/blt_hf_eval.log"
python benchmarks/shipped_bounds.py "$ship" > "$out/shipped_bounds.txt" 2> /dev/null  # the tests' two values
wait

sample=(--lines 300 --prompts 43 --headers 48)  # teacher-forced block accuracy in the (shorter) AR process
python benchmarks/line_completion.py "$ship" "${sample[@]}" --settings ar --json "$out/larger_ar.json" \
  > "$out/larger_ar.log" 2>&1 &
python benchmarks/line_completion.py "$ship" "${sample[@]}" --block-accuracy-rows 0 --settings --extra \
  "blt_d_conf0.7_arfirst:decoding=diffusion,confidence_threshold=0.7,first_byte_from_ar=true,unmasking_fallback=most_confident" \
  "blt_d_conf0.7_arfirst_endblock:decoding=diffusion,confidence_threshold=0.7,first_byte_from_ar=true,unmasking_fallback=end_block" \
  --json "$out/larger_blt_d.json" > "$out/larger_blt_d.log" 2>&1
wait
python benchmarks/line_completion.py --merge "$out/larger_ar.json" "$out/larger_blt_d.json" \
  --json "$out/larger_sample.json" --markdown "$out/larger_sample.md"
python benchmarks/compare_quality.py "$baseline" "$out/larger_sample.json" > "$out/paired_vs_baseline.md"
python benchmarks/compare_quality.py "$out/larger_sample.json" "$out/larger_sample.json" --against ar \
  > "$out/paired_vs_ar.md"

for decoding in autoregressive diffusion self_speculation diffusion_verify; do
  echo "== $decoding"
  blt-hf generate "def read_config(path):" --model "$ship" --decoding "$decoding" 2>&1
done > "$out/readme_prompt.txt"

[ "${SPEED:-1}" = 0 ] && { echo "done (no speed run): $out"; exit 0; }
python benchmarks/line_completion.py "$ship" --lines 100 --prompts 12 --settings ar blt_s_k4 --extra \
  "blt_d_default:decoding=diffusion" "blt_d_most_confident:decoding=diffusion,unmasking_fallback=most_confident" \
  --json "$out/line_completion.json" --markdown "$out/line_completion.md" > "$out/line_completion.log" 2>&1
# The same ratio, steadier: every prompt timed 3 times per setting, the fastest kept (one run above moved
# 0.2x between two models with the same passes per byte).
python benchmarks/bench_generate.py --model "$ship" --prompts 12 --repeats 3 --skip-transformers \
  --settings ar blt_d_default blt_d_conf0.7 blt_s_k4 --out-dir "$out/speed" > "$out/speed.log" 2>&1
echo "done: $out"
