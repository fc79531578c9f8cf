"""Training pipeline shared by `examples/train.py` and `blt-hf train`.

Three starts, one Trainer loop (labels = input_ids from the stock
`DataCollatorForLanguageModeling(tokenizer, mlm=False)`; the model shifts / noises internally):
  * from scratch: train the entropy model, calibrate its threshold, build a BLT(-D) around it;
  * continue: `model_name_or_path` is one of our checkpoints;
  * fine-tune into BLT-D: `model_name_or_path` is a plain BLT checkpoint (ours or transformers'
    `BltForCausalLM`); `diffusion_block_size` is written into its loaded config.
Resuming: Trainer checkpoints live in `output_dir/checkpoint-*`; the entropy stage is saved in
`output_dir/entropy_model` and reused, so a rerun with `--resume_from_checkpoint` rebuilds the
identical model and loses nothing. The final model is written atomically to `output_dir/final`.
"""

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

from .checkpoints import checkpoint_problems, publish_dir, reporting_full_disk, resume_checkpoint
from .configuration_fast_blt import FastBltConfig, FastBltPatcherConfig
from .data import DEFAULT_SEQ_LEN, DEFAULT_VALIDATION_FRACTION, build_corpus
from .entropy_model import (DEFAULT_MAX_PATCH_LENGTH, DEFAULT_TARGET_PATCH_SIZE, FastBltEntropyModel,
                            calibrate_threshold, install_patcher)
from .evaluation import bits_per_byte
from .generation_config_fast_blt import FastBltGenerationConfig
from .modeling_fast_blt import FastBltForCausalLM
from .nonfinite import NonFiniteGradientError, dump_step, gradients_finite, rng_states
from .tokenization_fast_blt import FastBltTokenizer
from .tokenization_fast_blt_fast import FastBltTokenizerFast

logger = logging.getLogger(__name__)
ENTROPY_DIR, FINAL_DIR, CALIBRATION_FILE = "entropy_model", "final", "calibration.json"
DEFAULT_BLOCK_SIZE = 4  # the paper's cheapest BLT-D, nearly AR quality


@dataclass
class ModelArguments:
    """Which model to train. Sizes apply only when training from scratch."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "checkpoint to continue or fine-tune "
                                                                          "(ours or transformers' BLT); None = from scratch"})
    diffusion_block_size: int | None = field(default=None, metadata={
        "help": f"B of BLT-D (0 = plain next-byte BLT); None = keep the checkpoint's, {DEFAULT_BLOCK_SIZE} from scratch"})
    diffusion_loss_weight: float | None = field(default=None, metadata={
        "help": "weight of L_mask against L_clean; None = keep the checkpoint's, 1.0 from scratch"})
    diffusion_block_input: str | None = field(default=None, metadata={
        "help": "BLT-D block inputs: 'bytes' (byte embeddings) or 'encoder' (hash n-grams + encoder layers); "
                "None = keep the checkpoint's, 'bytes' from scratch"})
    diffusion_distill_weight: float | None = field(default=None, metadata={
        "help": "BLT-D self-distillation: share of each masked byte's target taken from the model's own "
                "next-byte distribution, in [0, 1]; None = keep the checkpoint's, 0 from scratch"})
    entropy_model_path: str | None = field(default=None, metadata={"help": "a trained FastBltEntropyModel directory "
                                                                           "to use instead of training one"})
    local_hidden_size: int = field(default=256, metadata={"help": "encoder/decoder width"})
    global_hidden_size: int = field(default=512, metadata={"help": "global transformer width"})
    encoder_layers: int = 1
    decoder_layers: int = 2
    global_layers: int = 4
    patcher_hidden_size: int = 128
    patcher_layers: int = 2
    hash_vocab: int = field(default=8192, metadata={"help": "rows per hash n-gram table (released BLT: 500002)"})
    entropy_steps: int = field(default=1000, metadata={"help": "optimizer steps for the entropy model"})
    entropy_learning_rate: float = 1e-3
    target_patch_size: float = DEFAULT_TARGET_PATCH_SIZE
    max_patch_length: int = DEFAULT_MAX_PATCH_LENGTH


@dataclass
class DataArguments:
    """The offline corpus (see blt_hf.data)."""

    data_dir: str | None = field(default=None, metadata={"help": "directory of text files; None = Python's stdlib "
                                                                 "sources + shipped docs"})
    seq_len: int = DEFAULT_SEQ_LEN
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    max_files: int | None = None
    max_train_bytes: int | None = None
    max_validation_bytes: int | None = None
    function_fraction: float = field(default=0.0, metadata={
        "help": "share of the training files' functions added as documents of their own (a `def` line after BOS)"})


def use_default_precision(args: TrainingArguments) -> TrainingArguments:
    """bf16 autocast on a bf16-capable GPU unless fp16/bf16 was chosen; fp32 otherwise (CPU)."""
    if not (args.bf16 or args.fp16) and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        args.bf16, args.mixed_precision = True, "bf16"  # mixed_precision is derived in __post_init__
    return args


def use_default_ddp(args: TrainingArguments) -> TrainingArguments:
    """DDP without the search for unused parameters unless asked for: Trainer turns it on by default, but
    every trainable parameter of our models (and of a LoRA adapter on them) takes part in every step (the
    entropy patcher is frozen, not unused), so it would only walk the autograd graph once more per step."""
    if args.ddp_find_unused_parameters is None:
        args.ddp_find_unused_parameters = False
    return args


def heads_for(width: int) -> int:
    return max(1, width // 64)  # head dim 64 as in BLT, one head for tiny widths


def stack(width: int, layers: int) -> dict:
    return dict(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads_for(width))


def patcher_config_from_args(m: ModelArguments) -> FastBltPatcherConfig:
    return FastBltPatcherConfig(**stack(m.patcher_hidden_size, m.patcher_layers))


def blt_config_from_args(m: ModelArguments, seq_len: int) -> FastBltConfig:
    local = stack(m.local_hidden_size, 0)
    return FastBltConfig(
        diffusion_block_size=DEFAULT_BLOCK_SIZE if m.diffusion_block_size is None else m.diffusion_block_size,
        diffusion_loss_weight=1.0 if m.diffusion_loss_weight is None else m.diffusion_loss_weight,
        diffusion_block_input=m.diffusion_block_input or "bytes",
        diffusion_distill_weight=m.diffusion_distill_weight or 0.0,
        encoder_hash_byte_group_vocab=m.hash_vocab,
        max_patch_length=m.max_patch_length, max_position_embeddings=max(seq_len, 1024),
        patcher_config=patcher_config_from_args(m).to_dict(),
        encoder_config=dict(local, num_hidden_layers=m.encoder_layers),
        decoder_config=dict(local, num_hidden_layers=m.decoder_layers),
        global_config=stack(m.global_hidden_size, m.global_layers),
    )


class FastBltTrainer(Trainer):
    """Trainer whose evaluation repeats: `eval_loss` is the next-byte loss (the model's eval-mode loss),
    and a BLT-D model adds `eval_masked_block_bpb_t{t}` at fixed noise levels with a fixed generator
    (blt_hf.evaluation.bits_per_byte), instead of one fresh noise draw mixed into the loss."""

    def training_step(self, model, inputs, num_items_in_batch=None):
        """Trainer's step, then one check that every gradient is finite (blt_hf.nonfinite says why): at the
        first step that fails it, stop before the optimizer step, leaving the step to replay."""
        states = rng_states(self.args.device)
        loss = super().training_step(model, inputs, num_items_in_batch)
        # Alone: after every micro-batch, so the saved batch is the one that broke. Under DDP only where the
        # gradients were just all-reduced (identical on every rank, so every rank stops together); each rank
        # then saves its own last micro-batch, which under gradient accumulation need not be the one that
        # broke. Not with fp16's GradScaler, whose scaled gradients overflow to inf by design (it skips those steps).
        checked = self.accelerator.sync_gradients or self.args.world_size == 1
        if checked and self.accelerator.scaler is None and not gradients_finite(model):
            self.stop_on_nonfinite(model, inputs, states, float(loss))
        return loss

    def stop_on_nonfinite(self, model, inputs, states, loss):
        step, rank = self.state.global_step + 1, self.args.process_index
        name = f"nonfinite-step{step}" + (f"-rank{rank}" if rank else "")
        directory = Path(self.args.output_dir) / name
        bad = dump_step(self.accelerator.unwrap_model(model), inputs, states, directory, step, loss,
                        "bf16" if self.args.bf16 else None)["parameters_with_nonfinite_gradients"]
        raise NonFiniteGradientError(
            f"step {step}: the loss is {loss:.4g} but {len(bad)} parameter(s) have non-finite gradients (first: "
            f"{', '.join(bad[:3])}); stopped before the optimizer step. The step is saved in {directory}; "
            f"replay it with: python -m blt_hf.nonfinite {directory} --device {self.args.device.type}"
            + (" --bf16" if self.args.bf16 else ""), directory)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        model = self.accelerator.unwrap_model(self.model)
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        if getattr(model.config, "diffusion_block_size", 0) > 0 and dataset is not None:
            result = bits_per_byte(model, dataset, self.args.per_device_eval_batch_size, next_byte=False)
            extra = {f"{metric_key_prefix}_masked_block_bpb_t{t}": v for t, v in result["masked_block_bpb"].items()}
            self.log(extra)
            metrics.update(extra)
        return metrics


def collator():
    return DataCollatorForLanguageModeling(FastBltTokenizer(), mlm=False)


def save_atomically(model, path, tokenizer=None) -> Path:
    """Single-process save: write a temporary sibling, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    model.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    return publish_dir(tmp, path)


def save_final(trainer: Trainer, path) -> Path:
    """Distributed-safe atomic save: every rank joins `save_model` (FSDP / ZeRO-3 gather the
    weights there), then rank 0 publishes the finished temporary directory (`checkpoints.publish_dir`)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        publish_dir(tmp, path)
    trainer.accelerator.wait_for_everyone()
    return path


def entropy_training_args(args: TrainingArguments, m: ModelArguments) -> TrainingArguments:
    """The BLT run's settings with the entropy model's own steps, LR and directory."""
    d = args.to_dict()
    d.update(output_dir=os.path.join(args.output_dir, ENTROPY_DIR + "_run"), max_steps=m.entropy_steps,
             learning_rate=m.entropy_learning_rate, resume_from_checkpoint=None, push_to_hub=False,
             eval_strategy="no", load_best_model_at_end=False)
    fields = TrainingArguments.__dataclass_fields__  # to_dict masks *_token values: never copy those
    d = {k: v for k, v in d.items() if k in fields and fields[k].init and not k.endswith("_token")}
    return use_default_precision(TrainingArguments(**d))


def train_entropy_model(corpus, m: ModelArguments, args: TrainingArguments):
    """Stage 1: train + calibrate the patcher, saved to output_dir/entropy_model (reused if present)."""
    out = Path(args.output_dir) / ENTROPY_DIR
    if (out / CALIBRATION_FILE).exists():
        cal = json.loads((out / CALIBRATION_FILE).read_text())
        return FastBltEntropyModel.from_pretrained(out), cal["patching_threshold"]
    e_args = entropy_training_args(args, m)
    torch.manual_seed(args.seed)  # same initial weights on every rank
    model = FastBltEntropyModel(patcher_config_from_args(m))
    held_out = torch.tensor(corpus["validation"]["input_ids"][:256])
    if len(held_out) == 0:
        raise ValueError("the validation split has no full row to calibrate the patcher on: "
                         "lower seq_len or raise validation_fraction")
    trainer = Trainer(model, e_args, train_dataset=corpus["train"], data_collator=collator())
    resume = resume_checkpoint(e_args.output_dir) if os.path.isdir(e_args.output_dir) else None
    with reporting_full_disk(e_args.output_dir):
        trainer.train(resume_from_checkpoint=resume)
        save_final(trainer, out)
    # Reload rather than reuse `model`: under FSDP its parameters are shards. Every rank calibrates
    # (deterministic, identical); the calibration file, written last, marks the stage as done.
    model = FastBltEntropyModel.from_pretrained(out).to(args.device)
    threshold, size = calibrate_threshold(model, held_out, m.target_patch_size, m.max_patch_length)
    if trainer.is_world_process_zero():
        cal = dict(patching_threshold=threshold, mean_patch_size=size, target_patch_size=m.target_patch_size,
                   max_patch_length=m.max_patch_length, held_out_rows=len(held_out))
        tmp = out / f".{CALIBRATION_FILE}.tmp"  # written last: its presence marks the stage as done
        tmp.write_text(json.dumps(cal, indent=2))
        os.replace(tmp, out / CALIBRATION_FILE)
    return model, threshold


def build_model(corpus, m: ModelArguments, args: TrainingArguments, seq_len: int):
    """The model the Trainer starts from (see the module docstring for the three cases)."""
    if m.model_name_or_path is not None:
        model = FastBltForCausalLM.from_pretrained(m.model_name_or_path)
        if m.diffusion_block_size is not None:
            model.config.diffusion_block_size = m.diffusion_block_size
            model.generation_config = FastBltGenerationConfig.from_model_config(model.config)  # decode with the trained B
        if m.diffusion_loss_weight is not None:
            model.config.diffusion_loss_weight = m.diffusion_loss_weight
        if m.diffusion_block_input is not None:
            model.config.diffusion_block_input = m.diffusion_block_input
        if m.diffusion_distill_weight is not None:
            model.config.diffusion_distill_weight = m.diffusion_distill_weight
    else:
        torch.manual_seed(args.seed)  # same initial weights on every rank and on every resume
        model = FastBltForCausalLM(blt_config_from_args(m, seq_len))
    if m.entropy_model_path is not None:
        cal = json.loads((Path(m.entropy_model_path) / CALIBRATION_FILE).read_text())
        install_patcher(model, FastBltEntropyModel.from_pretrained(m.entropy_model_path),
                        cal["patching_threshold"], cal["max_patch_length"])
    elif m.model_name_or_path is None:
        install_patcher(model, *train_entropy_model(corpus, m, args), m.max_patch_length)
    return model


def resume_arg(args: TrainingArguments):
    """What to resume from: `--resume_from_checkpoint true` means the newest *complete* checkpoint in
    output_dir (incomplete ones are set aside; None = nothing to resume, start fresh); a path must be
    a complete checkpoint."""
    resume = args.resume_from_checkpoint
    if resume is True or (isinstance(resume, str) and resume.lower() == "true"):
        if not os.path.isdir(args.output_dir):
            logger.warning("nothing to resume from: %s does not exist yet, starting from step 0", args.output_dir)
            return None
        return resume_checkpoint(args.output_dir, needs_training_state=not args.save_only_model)
    if resume and (problems := checkpoint_problems(resume, needs_training_state=not args.save_only_model)):
        raise ValueError(f"--resume_from_checkpoint {resume} is not a complete checkpoint: {'; '.join(problems)}")
    return resume


def parse_args(argv=None, prog: str | None = None):
    """(ModelArguments, DataArguments, TrainingArguments) from the command line (or one .json file);
    `prog` names the command in --help and errors (default: the script's name)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments), prog=prog)
    if argv and len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(argv[0])
    return parser.parse_args_into_dataclasses(args=argv)


def check_arguments(m: ModelArguments, d: DataArguments) -> None:
    """Every argument that can be checked before any work starts (corpus, entropy stage, training)."""
    if not 0 <= d.validation_fraction < 1:
        raise ValueError(f"--validation_fraction must be in [0, 1): it is the share of files held out, got "
                         f"{d.validation_fraction}")
    if not 0 <= d.function_fraction <= 1:
        raise ValueError(f"--function_fraction must be in [0, 1]: it is the share of functions added, got "
                         f"{d.function_fraction}")
    if d.seq_len < 2:
        raise ValueError(f"--seq_len must be >= 2 bytes, got {d.seq_len}")
    if d.data_dir is not None and not os.path.isdir(d.data_dir):
        raise ValueError(f"--data_dir {d.data_dir} is not a directory")
    if m.model_name_or_path is None and m.entropy_model_path is None and d.validation_fraction == 0:
        raise ValueError("training from scratch calibrates the entropy patcher on held-out rows: "
                         "--validation_fraction must be > 0 (or pass --entropy_model_path)")
    for name in ("diffusion_block_size", "entropy_steps", "hash_vocab", "local_hidden_size", "global_hidden_size"):
        value = getattr(m, name)
        if value is not None and value < (0 if name == "diffusion_block_size" else 1):
            raise ValueError(f"--{name} must be {'>= 0' if name == 'diffusion_block_size' else '>= 1'}, got {value}")
    if m.diffusion_loss_weight is not None and not m.diffusion_loss_weight > 0:
        raise ValueError(f"--diffusion_loss_weight must be > 0, got {m.diffusion_loss_weight}")
    if m.diffusion_distill_weight is not None and not 0 <= m.diffusion_distill_weight <= 1:
        raise ValueError(f"--diffusion_distill_weight must be in [0, 1], got {m.diffusion_distill_weight}")


def run_training(m: ModelArguments, d: DataArguments, args: TrainingArguments, callbacks=()):
    """Build corpus and model, train (resuming when asked), save `output_dir/final`; returns (trainer, path).
    `callbacks`: extra `TrainerCallback`s for the Trainer."""
    use_default_ddp(use_default_precision(args))
    check_arguments(m, d)
    corpus = build_corpus(d.data_dir, d.seq_len, d.validation_fraction, d.max_files, d.max_train_bytes,
                          d.max_validation_bytes, seed=args.data_seed or 0, function_fraction=d.function_fraction)
    if len(corpus["train"]) == 0:
        raise ValueError(f"the training split has no full row of {d.seq_len} bytes: add data, lower --seq_len or "
                         f"--validation_fraction ({d.validation_fraction})")
    model = build_model(corpus, m, args, d.seq_len)
    eval_set = corpus["validation"] if args.eval_strategy != "no" else None
    args.prediction_loss_only = True  # no metrics need logits; BLT-D outputs also carry block logits
    trainer = FastBltTrainer(model, args, train_dataset=corpus["train"], eval_dataset=eval_set,
                             data_collator=collator(), callbacks=list(callbacks),
                      # saved with every checkpoint and the final model, with the model's one length limit
                      processing_class=FastBltTokenizerFast(model_max_length=model.config.max_bytes))
    with reporting_full_disk(args.output_dir):
        trainer.train(resume_from_checkpoint=resume_arg(args))
        return trainer, save_final(trainer, Path(args.output_dir) / FINAL_DIR)
