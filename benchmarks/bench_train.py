"""Training throughput (bytes/s) of one model under the BLT-D objective for several block sizes.

The same weights and batches are timed for every B (B = 0: plain next-byte BLT), forward +
backward + AdamW step, after warm-up, so the cost of the objective -- the decoder runs over
about N * (1 + B / mean_patch) positions -- shows directly. The patcher threshold is calibrated
to a mean patch of 4 bytes on the batches used. "decoder positions/byte" counts the clean
stream plus every block slot the forward builds (rows are padded to the batch's largest
number of blocks). Prints a card, then one JSON line.

  python benchmarks/bench_train.py                      # CPU defaults (small)
  python benchmarks/bench_train.py --compare-setups MODEL_DIR --block_sizes 8 --steps 40
      # short real `blt-hf train` runs side by side on the same bytes: fp32 in one process with
      # two threads (the setting the first default model was trained with) vs bf16 autocast with
      # two 1-thread DDP processes (gloo), with and without DDP's search for unused parameters, and
      # at B = 4; bytes/s, the logged loss at the same steps, the held-out next-byte bpb after
  python benchmarks/bench_train.py --device cuda --batch_size 16 --seq_len 1024 --local_hidden_size 512 \
      --global_hidden_size 1024 --global_layers 8
"""

import argparse
import json
import time

import torch

from blt_hf import FastBltForCausalLM
from blt_hf.data import build_corpus
from blt_hf.entropy_model import FastBltEntropyModel, calibrate_threshold, install_patcher, model_patch_size
from blt_hf.training import ModelArguments, blt_config_from_args


def build_model(args, rows):
    sizes = ModelArguments(local_hidden_size=args.local_hidden_size, global_hidden_size=args.global_hidden_size,
                           global_layers=args.global_layers, decoder_layers=args.decoder_layers,
                           hash_vocab=args.hash_vocab, diffusion_block_size=0)
    torch.manual_seed(0)
    model = FastBltForCausalLM(blt_config_from_args(sizes, args.seq_len))
    entropy_model = FastBltEntropyModel(model.config.patcher_config)
    with torch.no_grad():  # an untrained patcher is near-uniform; spread its entropies out
        entropy_model.patcher.lm_head.weight.mul_(8.0)
    threshold, _ = calibrate_threshold(entropy_model, rows, 4.0, 8)
    return install_patcher(model, entropy_model, threshold, 8)


def time_block_size(model, batches, block_size, warmup, device):
    model.config.diffusion_block_size = block_size
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    positions, n_bytes = 0, 0
    for step, ids in enumerate(batches[:warmup] + batches):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with autocast:
            out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= warmup:
            n_bytes += ids.numel()
            blocks = out.block_logits.shape[:3].numel() if block_size else 0  # (batch, blocks, B)
            positions += ids.numel() + blocks
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return dict(block_size=block_size, bytes_per_s=n_bytes / elapsed, step_s=elapsed / len(batches),
                decoder_positions_per_byte=positions / n_bytes)


TRAIN_FLAGS = ("--seq_len 512 --learning_rate 1e-3 --lr_scheduler_type constant --warmup_steps 0 --weight_decay 0.1 "
               "--adam_beta2 0.95 --max_grad_norm 1.0 --save_strategy no --logging_steps 5 --report_to none --seed 0 "
               "--disable_tqdm true --use_cpu true")
DDP = ("accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 "
       "--dynamo_backend no examples/train.py")
SETUPS = {  # name: (launcher prefix, OMP threads per process, processes, extra flags, B or None = --block_sizes)
    "fp32, 1 process x 2 threads": ("blt-hf train", 2, 1, "", None),
    "bf16 autocast, 2 DDP processes x 1 thread, DDP searching unused parameters (Trainer's default)": (
        DDP, 1, 2, "--bf16 true --ddp_find_unused_parameters true", None),
    "bf16 autocast, 2 DDP processes x 1 thread, no search (blt_hf's default)": (DDP, 1, 2, "--bf16 true", None),
    # The block size that won the objective ablation (MODEL_CARD.md): another objective, so its logged
    # loss (L_clean + w L_mask over B = 4 blocks) does not compare; the held-out next-byte bpb does.
    "bf16 autocast, 2 DDP processes x 1 thread, no search, B = 4 (the shipped model's objective)": (
        DDP, 1, 2, "--bf16 true", 4),
}
VALIDATION_ROWS = 128  # held-out rows of 512 bytes for the next-byte bpb after each run


def run_setup(name, model_dir, block_size, steps, rows_per_step, out_dir, validation):
    """One short `blt-hf train` run (continuing `model_dir`); -> bytes/s, {step: logged loss} and the
    next-byte bpb of the result on `validation` rows."""
    import ast
    import os
    import shlex
    import subprocess

    from blt_hf.evaluation import bits_per_byte

    launcher, threads, procs, extra, own_block_size = SETUPS[name]
    block_size = own_block_size or block_size
    cmd = (f"{launcher} --model_name_or_path {model_dir} --diffusion_block_size {block_size} --output_dir {out_dir} "
           f"--max_steps {steps} --per_device_train_batch_size {rows_per_step // procs} {TRAIN_FLAGS} {extra}")
    done = subprocess.run(shlex.split(cmd), capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if done.returncode != 0:
        raise RuntimeError(f"{cmd}\n{done.stderr[-3000:]}")
    logs = [ast.literal_eval(line.strip()) for line in done.stdout.splitlines() if line.strip().startswith("{'")]
    losses = {i * 5 + 5: float(d["loss"]) for i, d in enumerate(x for x in logs if "loss" in x)}
    runtime = float(next(d["train_runtime"] for d in logs if "train_runtime" in d))
    trained = FastBltForCausalLM.from_pretrained(f"{out_dir}/final")
    bpb = bits_per_byte(trained, validation, batch_size=8, mask_rates=())["next_byte_bpb"]
    return dict(setup=name, block_size=block_size, command=cmd, bytes_per_s=steps * rows_per_step * 512 / runtime,
                losses=losses, next_byte_bpb=bpb)


def compare_setups(args):
    import tempfile

    names = [name for i, name in enumerate(SETUPS) if args.setups is None or str(i) in args.setups.split(",")]
    validation = build_corpus(seq_len=512, max_validation_bytes=VALIDATION_ROWS * 512)["validation"]
    torch.set_num_threads(2)  # the held-out bpb after each run, in this process, on the two cores
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names):
            rows.append(run_setup(name, args.compare_setups, int(args.block_sizes), args.steps, 8, f"{tmp}/{i}",
                                  validation))
    base = rows[0]["bytes_per_s"]
    steps = sorted(rows[0]["losses"])
    print(f"continuing {args.compare_setups}, B = {args.block_sizes} unless named, 8 rows x 512 bytes per step, "
          f"{args.steps} steps; next-byte bpb on {len(validation)} held-out rows after the run")
    print("| setup | bytes/s | relative | held-out next-byte bpb | "
          + " | ".join(f"loss @ {s}" for s in steps) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(steps))
    for r in rows:
        print(f"| {r['setup']} | {r['bytes_per_s']:.0f} | {r['bytes_per_s'] / base:.2f}x | {r['next_byte_bpb']:.4f} | "
              + " | ".join(f"{r['losses'].get(s, float('nan')):.3f}" for s in steps) + " |")
    print(json.dumps(dict(block_size=int(args.block_sizes), steps=args.steps, results=rows)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--block_sizes", default="0,4,8,16")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--seq_len", type=int, default=256)
    p.add_argument("--local_hidden_size", type=int, default=128)
    p.add_argument("--global_hidden_size", type=int, default=256)
    p.add_argument("--global_layers", type=int, default=2)
    p.add_argument("--decoder_layers", type=int, default=2)
    p.add_argument("--hash_vocab", type=int, default=4096)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compare-setups", metavar="MODEL_DIR", help="time real training setups (see above)")
    p.add_argument("--setups", default=None, help="with --compare-setups: which of SETUPS, by index (e.g. 0,3)")
    args = p.parse_args(argv)
    if args.compare_setups:
        return compare_setups(args)
    device = torch.device(args.device)

    rows = torch.tensor(build_corpus(seq_len=args.seq_len, max_files=200,
                                     max_train_bytes=args.seq_len * args.batch_size * args.steps)["train"]["input_ids"])
    model = build_model(args, rows).to(device).train()
    batches = [b.to(device) for b in rows.split(args.batch_size)][: args.steps]
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}), "
          f"{params / 1e6:.2f}M trainable params, batch {args.batch_size} x {args.seq_len} bytes, "
          f"mean patch {model_patch_size(model, rows.to(device)):.2f} bytes, {args.steps} timed steps")
    results = [time_block_size(model, batches, int(b), args.warmup, device) for b in args.block_sizes.split(",")]
    base = results[0]["bytes_per_s"]
    for r in results:
        print(f"B={r['block_size']:>2}: {r['bytes_per_s']:>10.0f} bytes/s  {r['step_s'] * 1e3:8.1f} ms/step  "
              f"decoder positions/byte {r['decoder_positions_per_byte']:.2f}  relative {r['bytes_per_s'] / base:.2f}")
    print(json.dumps(dict(device=str(device), results=results)))


if __name__ == "__main__":
    main()
