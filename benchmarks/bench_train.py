"""Training throughput (bytes/s) of one model under the BLT-D objective for several block sizes.

The same weights and batches are timed for every B (B = 0: plain next-byte BLT), forward +
backward + AdamW step, after warm-up, so the cost of the objective -- the decoder runs over
about N * (1 + B / mean_patch) positions -- shows directly. The patcher threshold is calibrated
to a mean patch of 4 bytes on the batches used. "decoder positions/byte" counts the clean
stream plus every block slot the forward builds (rows are padded to the batch's largest
number of blocks). Prints a card, then one JSON line.

  python benchmarks/bench_train.py                      # CPU defaults (small)
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
    args = p.parse_args(argv)
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
