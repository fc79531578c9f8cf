#!/usr/bin/env bash
# Objective ablations of issue 8: short BLT-D fine-tunes of the model shipped before them, same bytes
# (same seed, same rows in the same order), one CPU thread each, two at a time. Judge the results with
#   python benchmarks/line_completion.py runs/ablate/<name>/final ...
# Base: the model shipped before issue 8 (`git show 3f423e5:src/blt_hf/default_model/...`, kept as
# runs/base_blt_d8). Usage: benchmarks/ablate_objective.sh [base model] [steps]
set -euo pipefail
base=${1:-src/blt_hf/default_model}
steps=${2:-80}
out=runs/ablate
mkdir -p "$out"
run() {  # name block_size loss_weight [block input]
  OMP_NUM_THREADS=1 blt-hf train --model_name_or_path "$base" --output_dir "$out/$1" \
    --diffusion_block_size "$2" --diffusion_loss_weight "$3" --diffusion_block_input "${4:-bytes}" \
    --seq_len 512 --per_device_train_batch_size 8 --max_steps "$steps" --bf16 true --use_cpu true \
    --learning_rate 1e-3 --lr_scheduler_type cosine --warmup_steps 8 --weight_decay 0.1 --adam_beta2 0.95 \
    --max_grad_norm 1.0 --save_strategy no --logging_steps 5 --report_to none --seed 0 \
    --disable_tqdm true > "$out/$1.log" 2>&1
}
run b8_w1 8 1.0 & run b4_w1 4 1.0 & wait
run b8_w2 8 2.0 & run b4_w2 4 2.0 & wait
run b4_w2_encoder 4 2.0 encoder  # block input through the local encoder (round 3, one run)
