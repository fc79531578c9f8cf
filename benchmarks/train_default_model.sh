#!/usr/bin/env bash
# How the shipped default model was trained (issue 8; MODEL_CARD.md): the previous default BLT-D-8
# (copied to runs/base_blt_d8 before it was replaced) continued as BLT-D-4 with bf16 autocast in two
# 1-thread DDP processes (gloo), checkpoints every 200 steps (~10 min). Rerunning the same command
# resumes from the newest complete checkpoint. Usage: benchmarks/train_default_model.sh [steps] [L_mask weight]
# Stage 2 (a second cosine cycle from the stage-1 result, another data order):
#   BASE=runs/default_v2/final OUT=runs/default_v3 LR=6e-4 SEED=2 benchmarks/train_default_model.sh 1800 2
# FUNCS=0.25 adds a quarter of the training files' functions as documents of their own (--function_fraction).
set -euo pipefail
steps=${1:-1500}
weight=${2:-1.0}
base=${BASE:-runs/base_blt_d8}
out=${OUT:-runs/default_v2}
lr=${LR:-1e-3}
seed=${SEED:-1}
funcs=${FUNCS:-0}
OMP_NUM_THREADS=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 \
  --dynamo_backend no examples/train.py --use_cpu true --bf16 true \
  --model_name_or_path "$base" --diffusion_block_size 4 --diffusion_loss_weight "$weight" --output_dir "$out" \
  --seq_len 512 --function_fraction "$funcs" --per_device_train_batch_size 4 --max_steps "$steps" \
  --learning_rate "$lr" --lr_scheduler_type cosine --warmup_steps 30 --weight_decay 0.1 --adam_beta2 0.95 \
  --max_grad_norm 1.0 --save_steps 150 --save_total_limit 2 --logging_steps 10 --report_to none \
  --seed "$seed" --disable_tqdm true --resume_from_checkpoint true
