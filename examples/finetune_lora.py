"""LoRA fine-tuning of a BLT / BLT-D checkpoint with PEFT, then reload and merge.

  python examples/finetune_lora.py --model_name_or_path runs/bltd4/final --output_dir runs/lora \
      --data_dir my_texts/ --max_steps 500 --per_device_train_batch_size 8 --learning_rate 2e-4

target_modules (--lora_targets):
  * default "": `LoraConfig()` picks the default blt_hf registers with PEFT: attention (self- and
    cross-attention share the q/k/v/o names) and SwiGLU linears of encoder, global and decoder;
  * a comma list of linear names ("q_proj,v_proj"), or "all-linear": also the patch projections;
    unlike PEFT's own "all-linear" it never wraps the frozen entropy patcher (`model.patcher.*`,
    which PEFT's "all-linear" does reach) nor `lm_head`.
Both are turned into a regex by `blt_hf.lora.lora_target_modules`. The objective is the
model's own (BLT-D when config.diffusion_block_size > 0). Writes output_dir/adapter (the
adapter alone) and output_dir/merged (a plain checkpoint, adapter merged in).
"""

import sys
from dataclasses import dataclass

from peft import LoraConfig, PeftModel, get_peft_model
from transformers import HfArgumentParser, Trainer, TrainingArguments

from blt_hf import FastBltForCausalLM, FastBltTokenizerFast
from blt_hf.data import build_corpus
from blt_hf.lora import lora_target_modules
from blt_hf.training import DataArguments, collator, resume_arg, save_atomically, use_default_precision


@dataclass
class LoraArguments:
    model_name_or_path: str = "runs/bltd4/final"
    lora_targets: str = ""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0


def main(argv=None):
    lora, data, args = HfArgumentParser((LoraArguments, DataArguments, TrainingArguments)).parse_args_into_dataclasses(argv)
    use_default_precision(args)
    corpus = build_corpus(data.data_dir, data.seq_len, data.validation_fraction, data.max_files,
                          data.max_train_bytes, data.max_validation_bytes)
    base = FastBltForCausalLM.from_pretrained(lora.model_name_or_path)
    names = "all-linear" if lora.lora_targets == "all-linear" else tuple(lora.lora_targets.split(","))
    targets = lora_target_modules(base, names) if lora.lora_targets else None  # None: blt_hf's PEFT default
    config = LoraConfig(target_modules=targets, r=lora.lora_r, lora_alpha=lora.lora_alpha,
                        lora_dropout=lora.lora_dropout, task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    model.print_trainable_parameters()
    trainer = Trainer(model, args, train_dataset=corpus["train"], data_collator=collator())
    trainer.train(resume_from_checkpoint=resume_arg(args))
    if trainer.is_world_process_zero():
        model.save_pretrained(f"{args.output_dir}/adapter")
        reloaded = PeftModel.from_pretrained(FastBltForCausalLM.from_pretrained(lora.model_name_or_path),
                                             f"{args.output_dir}/adapter")
        merged = reloaded.merge_and_unload()
        tokenizer = FastBltTokenizerFast(model_max_length=merged.config.max_bytes)
        save_atomically(merged, f"{args.output_dir}/merged", tokenizer)
        print(f"saved {args.output_dir}/adapter and {args.output_dir}/merged")


if __name__ == "__main__":
    main(sys.argv[1:])
