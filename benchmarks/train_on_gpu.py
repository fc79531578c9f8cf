"""Issue 8's GPU training run: continue the default model for a fixed wall-clock budget on one GPU.

Run twice on an H200 (2026-11-30, MODEL_CARD.md "GPU session"): every run broke at step 7 (the first
call's main run, logging every 4 steps, between steps 5 and 8) with NaN gradients under bf16 autocast
from a finite loss. The suspect, cuDNN's attention
backward, is now left out of training's SDPA choices (modeling_fast_blt.attention; unverified). Training
stops at a step with non-finite gradients (blt_hf.nonfinite) and this script then replays it on the device
under each attention kernel, writing `nonfinite.json` and the batch. One call
of the `device` tool from a bare checkout (no install of the package: PYTHONPATH=src), with the wheels
the device image lacks: `benchmarks/gpu_train_call.sh` holds the call and how to fetch the wheels.

What it does: a throughput probe (a few steps of the real setting, timed after warm-up), then one run
of as many steps as fit in `--budget_s` at that pace (a whole cosine cycle, so the schedule ends where
the time does), evaluating the held-out loss `--evals` times (the corpus is 13 MB: several epochs fit
in the budget, so overfitting must show if it comes) and keeping the best of those, then the final
model in bf16, in safetensors shards small enough for the device tool to bring back (16 MiB per file),
a summary JSON and the SHA-256 of every corpus document (the device's Python is 3.12, ours 3.11: the
held-out evaluation here checks that none of its files was trained on under another name). Back here:
`python benchmarks/ship_default_model.py OUT/final_bf16 --bf16 --target runs/ship_gpu` and the held-out
evaluation of MODEL_CARD.md decide whether it ships. Arguments after `--` go to `blt-hf train`
(blt_hf.training) unchanged, e.g. the sizes of a from-scratch model without `--base`.
"""

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from blt_hf import FastBltForCausalLM
from blt_hf.data import stdlib_documents
from blt_hf.nonfinite import BATCH_FILE, NonFiniteGradientError, replay_each_backend
from blt_hf.training import parse_args, run_training

SHARD = "15MB"  # the device tool brings back files of at most 16 MiB


class StepTimes(TrainerCallback):
    """Wall-clock seconds of every optimizer step (Trainer's train_runtime also counts start-up)."""

    def __init__(self):
        self.times, self.last = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.last)


def write_corpus_hashes(path: Path):
    """Name and SHA-256 of every document of this machine's standard-library corpus: the device's Python
    is not ours, so the held-out evaluation here checks that none of its files was trained on under
    another name."""
    lines = [f"{d.name}\t{hashlib.sha256(d.text.encode()).hexdigest()}" for d in stdlib_documents()]
    path.write_text("\n".join(lines) + "\n")


def train(out: Path, name: str, steps: int, a, extra: list[str], callbacks=()):
    """One `blt-hf train` run of `steps` steps at the script's setting -> (trainer, final model dir)."""
    argv = ["--output_dir", str(out / name), "--max_steps", str(steps), "--seq_len", str(a.seq_len),
            "--per_device_train_batch_size", str(a.batch), "--learning_rate", str(a.lr),
            "--lr_scheduler_type", "cosine", "--warmup_steps", str(min(a.warmup, steps // 10)),
            "--weight_decay", "0.1", "--adam_beta2", "0.95", "--max_grad_norm", "1.0",
            "--logging_steps", str(max(1, steps // 50)), "--report_to", "none", "--seed", str(a.seed),
            "--disable_tqdm", "true"]
    if a.base:
        argv += ["--model_name_or_path", a.base]
    argv += ["--dataloader_num_workers", "2"] if torch.cuda.is_available() else ["--use_cpu", "true"]
    every = steps // a.evals if name == "run" else 0
    if not every:
        argv += ["--save_strategy", "no"]
    else:
        # The corpus is small and the budget buys several epochs of it: keep the checkpoint with the lowest
        # held-out loss (Trainer's own best-model tracking) rather than whatever the last step left.
        argv += ["--eval_strategy", "steps", "--eval_steps", str(every), "--per_device_eval_batch_size",
                 str(a.batch), "--save_strategy", "steps", "--save_steps", str(every), "--save_total_limit", "2",
                 "--load_best_model_at_end", "true", "--metric_for_best_model", "eval_loss"]
    return run_training(*parse_args(argv + extra), callbacks=callbacks)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="results: final_bf16/ (shards), summary.json")
    p.add_argument("--work", type=Path, default=Path("/tmp/blt_gpu_train"), help="checkpoints, fp32 finals")
    p.add_argument("--base", default="src/blt_hf/default_model", help="checkpoint to continue ('' = from scratch)")
    p.add_argument("--budget_s", type=float, default=330, help="seconds of training in the main run")
    p.add_argument("--probe_steps", type=int, default=12)
    p.add_argument("--batch", type=int, default=64, help="rows of --seq_len bytes per step")
    p.add_argument("--seq_len", type=int, default=512)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--max_steps", type=int, default=20000, help="cap on the main run's steps")
    p.add_argument("--evals", type=int, default=4, help="held-out evaluations (and checkpoints) in the main run")
    a = p.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    a.out.mkdir(parents=True, exist_ok=True)

    try:
        run(a, extra)
    except NonFiniteGradientError as err:
        # Replay the broken step here, on the same device and precision (the CUDA noise state is only
        # meaningful there), and leave its report and batch where the device tool brings them back.
        print(err, flush=True)
        batch = load_file(err.directory / BATCH_FILE)
        model = FastBltForCausalLM.from_pretrained(err.directory, dtype=torch.float32)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        bf16 = json.loads((err.directory / "nonfinite.json").read_text())["autocast"] == "bf16"
        report = replay_each_backend(model, batch, device, bf16)
        (a.out / "nonfinite.json").write_text(json.dumps(dict(error=str(err), replay=report), indent=1))
        shutil.copy(err.directory / BATCH_FILE, a.out / "nonfinite_batch.safetensors")
        print(json.dumps(report), flush=True)
        raise SystemExit(2)


def run(a, extra):
    # The probe's first steps pay for start-up (kernels, allocator): time only the later half.
    times = StepTimes()
    train(a.work, "probe", a.probe_steps, a, extra, [times])
    step_s = statistics.median(times.times[len(times.times) // 2:])
    steps = max(1, min(a.max_steps, int(a.budget_s / step_s)))
    print(f"probe: {step_s * 1e3:.1f} ms per step of {a.batch} x {a.seq_len} bytes "
          f"({a.batch * a.seq_len / step_s:.0f} bytes/s) -> {steps} steps in {a.budget_s:.0f} s", flush=True)

    start = time.perf_counter()
    trainer, final = train(a.work, "run", steps, a, extra)
    seconds = time.perf_counter() - start
    model = FastBltForCausalLM.from_pretrained(final).to(torch.bfloat16)
    model.save_pretrained(a.out / "final_bf16", max_shard_size=SHARD)
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    summary = dict(device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                   python=sys.version.split()[0], torch=torch.__version__, base=a.base, steps=steps,
                   bytes=steps * a.batch * a.seq_len, seconds=round(seconds, 1),
                   probe_ms_per_step=round(step_s * 1e3, 2), extra_args=extra, evals=evals,
                   best_checkpoint=trainer.state.best_model_checkpoint, best_eval_loss=trainer.state.best_metric,
                   train_losses=[(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h])
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1))
    if "--data_dir" not in extra:
        write_corpus_hashes(a.out / "corpus_sha256.tsv")
    print(json.dumps({k: v for k, v in summary.items() if k != "train_losses"}))


if __name__ == "__main__":
    main()
