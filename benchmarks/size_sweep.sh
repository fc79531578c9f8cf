#!/usr/bin/env bash
# Issue 8, part 4: a short size sweep before choosing what to train long. Three sizes, each trained from
# scratch on the same rows (same seed, same 250 steps x 8 rows x 512 bytes = 1.0 M bytes) with the shipped
# recipe (BLT-D-4, L_mask weight 2, bf16 autocast, 2 DDP processes x 1 thread), all around the shipped
# model's frozen entropy patcher, so only the main model's size changes. Then held-out bits per byte and
# AR line completion for each. Rerunning resumes (checkpoints every 100 steps); finished runs are skipped.
#   benchmarks/size_sweep.sh [steps]      -> runs/sweep/{s,m,l}/final, runs/sweep/*.bpb.json, *.lc.json
set -euo pipefail
steps=${1:-250}
out=runs/sweep
mkdir -p "$out"
if [ ! -f "$out/patcher/calibration.json" ]; then  # the shipped model's patcher as an entropy-model directory
  python - "$out/patcher" <<'PY'
import json, sys
from pathlib import Path
from blt_hf import DEFAULT_MODEL_PATH, FastBltForCausalLM
from blt_hf.entropy_model import FastBltEntropyModel
model = FastBltForCausalLM.from_pretrained(DEFAULT_MODEL_PATH)
entropy_model = FastBltEntropyModel(model.config.patcher_config)
entropy_model.patcher.load_state_dict(model.model.patcher.state_dict())
entropy_model.save_pretrained(sys.argv[1])
c = model.config
Path(sys.argv[1], "calibration.json").write_text(json.dumps(dict(
    patching_threshold=c.patching_threshold, max_patch_length=c.max_patch_length, source=str(DEFAULT_MODEL_PATH))))
PY
fi
declare -A sizes=(  # local width, global width, global layers, hash rows per table
  [s]="192 256 3 512"
  [m]="256 288 4 512"   # the shipped model's shape
  [l]="288 384 6 1024"
)
for name in s m l; do
  read -r local global layers hash <<<"${sizes[$name]}"
  if [ ! -d "$out/$name/final" ]; then
    OMP_NUM_THREADS=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 \
      --dynamo_backend no examples/train.py --use_cpu true --bf16 true --entropy_model_path "$out/patcher" \
      --local_hidden_size "$local" --global_hidden_size "$global" --global_layers "$layers" --hash_vocab "$hash" \
      --diffusion_block_size 4 --diffusion_loss_weight 2 --output_dir "$out/$name" \
      --seq_len 512 --per_device_train_batch_size 4 --max_steps "$steps" \
      --learning_rate 1e-3 --lr_scheduler_type cosine --warmup_steps 30 --weight_decay 0.1 --adam_beta2 0.95 \
      --max_grad_norm 1.0 --save_steps 100 --save_total_limit 1 --logging_steps 10 --report_to none \
      --seed 0 --disable_tqdm true --resume_from_checkpoint true >>"$out/$name.log" 2>&1
  fi
done
for name in s m l; do
  [ -f "$out/$name.bpb.json" ] || OMP_NUM_THREADS=2 python benchmarks/eval_heldout.py "$out/$name/final" \
    --max-files 10 --json "$out/$name.bpb.json" >"$out/$name.bpb.log" 2>&1
  [ -f "$out/$name.lc.json" ] || python benchmarks/line_completion.py "$out/$name/final" --lines 60 --prompts 6 \
    --threads 2 --settings ar blt_d_conf0.7 --json "$out/$name.lc.json" >"$out/$name.lc.log" 2>&1
done
echo "sweep done"
