"""Train a BLT-D model with the HF Trainer (entropy model first when starting from scratch).

  # from scratch on Python's stdlib, B = 4, a small model, CPU:
  python examples/train.py --output_dir runs/bltd4 --diffusion_block_size 4 --max_steps 2000 \
      --per_device_train_batch_size 8 --learning_rate 4e-4 --lr_scheduler_type cosine --weight_decay 0.1 \
      --adam_beta2 0.95 --max_grad_norm 1.0 --save_steps 500 --logging_steps 50
  # resume after an interruption (same command plus):      --resume_from_checkpoint true
  # fine-tune a plain BLT (ours or transformers' BltForCausalLM) into BLT-D-8:
  python examples/train.py --model_name_or_path path/to/blt --diffusion_block_size 8 --output_dir runs/ft
  # 2-process DDP on CPU (gloo; `--cpu --num_processes 2` would start ONE process in accelerate 1.15):
  OMP_NUM_THREADS=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 \
      --dynamo_backend no examples/train.py --use_cpu true --bf16 true ...
All flags: ModelArguments / DataArguments in blt_hf.training, plus transformers' TrainingArguments.
"""

import sys

from blt_hf.training import parse_args, run_training

if __name__ == "__main__":
    trainer, final = run_training(*parse_args(sys.argv[1:]))
    if trainer.is_world_process_zero():
        print(f"saved {final} (world size {trainer.args.world_size}, {trainer.state.global_step} steps)")
