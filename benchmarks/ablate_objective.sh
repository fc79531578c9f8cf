#!/usr/bin/env bash
# Objective ablations of issue 8: short BLT-D fine-tunes of one base model, same bytes (same seed, same
# rows in the same order), one CPU thread each, two at a time. Judge each with benchmarks/ablate_eval.sh.
# Usage: benchmarks/ablate_objective.sh [base model] [steps] [round]
#   round "objective" (default; base was the model shipped before issue 8, `git show
#   3f423e5:src/blt_hf/default_model/...`, kept as runs/base_blt_d8): block size 4 vs 8, L_mask weight
#   1 vs 2, block input bytes vs encoder;
#   round "distill" (base: stage 4, runs/default_v4/final): self-distillation weight 0 vs 0.5, BLT-D-4,
#   L_mask weight 2, peak learning rate LR (default 3e-4, a fine-tune of a finished cosine cycle);
#   round "weight" (same base and settings; its control is distill0): L_mask weight 4 and 8.
set -euo pipefail
base=${1:-src/blt_hf/default_model}
steps=${2:-80}
round=${3:-objective}
out=runs/ablate
mkdir -p "$out"
run() {  # name block_size loss_weight [block input] [distill weight]
  OMP_NUM_THREADS=1 blt-hf train --model_name_or_path "$base" --output_dir "$out/$1" \
    --diffusion_block_size "$2" --diffusion_loss_weight "$3" --diffusion_block_input "${4:-bytes}" \
    --diffusion_distill_weight "${5:-0}" \
    --seq_len 512 --per_device_train_batch_size 8 --max_steps "$steps" --bf16 true --use_cpu true \
    --learning_rate "${LR:-1e-3}" --lr_scheduler_type cosine --warmup_steps 8 --weight_decay 0.1 --adam_beta2 0.95 \
    --max_grad_norm 1.0 --save_strategy no --logging_steps 5 --report_to none --seed 0 \
    --disable_tqdm true > "$out/$1.log" 2>&1
}
case $round in
  objective)
    run b8_w1 8 1.0 & run b4_w1 4 1.0 & wait
    run b8_w2 8 2.0 & run b4_w2 4 2.0 & wait
    run b4_w2_encoder 4 2.0 encoder ;;  # block input through the local encoder (round 3, one run)
  distill)
    LR=${LR:-3e-4}
    run distill0 4 2.0 bytes 0 & run distill05 4 2.0 bytes 0.5 & wait ;;
  weight)
    LR=${LR:-3e-4}
    run weight4 4 4.0 bytes 0 & run weight8 4 8.0 bytes 0 & wait ;;
  *) echo "unknown round $round" >&2; exit 2 ;;
esac
