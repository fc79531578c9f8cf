"""Generation benchmark: every blt_hf decoder vs transformers' BltForCausalLM.generate, same weights.

    python benchmarks/bench_generate.py [--model DIR | --preset tiny|small|1b] [--new-bytes 512]
        [--prompts "a" "b"] [--threads 1] [--repeats 3] [--settings ar blt_s_k4 ...] [--skip-transformers]
        [--device cuda --dtype bfloat16 --peak-gbps 4800]

Without --model a small random BLT is built (random weights: BLT-S / BLT-D acceptance and output
quality are meaningless; costs and speed are not). Per setting: bytes/s, decoder and global
passes per byte, the paper's estimated weight bandwidth (Fast BLT eq. 8, 16-bit weights, hash
tables and entropy model excluded) and its reduction vs our AR decoder, the achieved weight
traffic in GB/s (eq. 8 bytes over the measured time, at the model's dtype) and, with --peak-gbps,
its share of the device's memory bandwidth. Prints a table, then one JSON line.
"""

import argparse
import json
import sys
import tempfile
import time

import torch

import blt_hf
from blt_hf import FastBltConfig, FastBltForCausalLM, FastBltTokenizer
from blt_hf.cost import bandwidth_gb, param_counts

SETTINGS = [  # (name, generate kwargs)
    ("ar", dict(decoding="autoregressive")),
    ("blt_s_k4", dict(decoding="self_speculation", draft_length=4)),
    ("blt_s_k8", dict(decoding="self_speculation", draft_length=8)),
    ("blt_d_conf0.7", dict(decoding="diffusion", unmasking="confidence", confidence_threshold=0.7)),
    ("blt_d_eb1.0", dict(decoding="diffusion", unmasking="entropy_bound", entropy_bound=1.0)),
    ("blt_d_onestep", dict(decoding="diffusion", unmasking="one_step")),
    ("blt_dv_conf0.3", dict(decoding="diffusion_verify", unmasking="confidence", confidence_threshold=0.3)),
    ("blt_dv_onestep", dict(decoding="diffusion_verify", unmasking="one_step")),
]


PRESETS = {  # local width, global width, global layers, patcher width, hash table rows, decoder layers
    "tiny": (64, 128, 2, 64, 1000, 2),  # HF_NOTES §5.4's model, ~0.9M parameters
    "small": (256, 512, 4, 128, 4096, 2),  # ~18M parameters
    "1b": (1024, 2048, 24, 256, 500_000, 9),  # BLT-1B-shaped (global 24 x 2048, local 1024): GPU speed only
}


def random_model(preset: str = "tiny", seed: int = 0, device: str = "cpu") -> FastBltForCausalLM:
    """A random BLT of the given size, built on `device` (a 1B-shaped one initialises in seconds on a
    GPU, minutes on its host), its patcher sharpened so patches average ~4 bytes."""
    torch.manual_seed(seed)
    local_w, global_w, global_layers, patcher_w, table, decoder_layers = PRESETS[preset]
    local = dict(hidden_size=local_w, num_attention_heads=max(2, local_w // 64))
    config = FastBltConfig(
        encoder_hash_byte_group_size=[3, 4, 5], encoder_hash_byte_group_vocab=table,
        patcher_config=dict(hidden_size=patcher_w, num_hidden_layers=1, num_attention_heads=2),
        encoder_config=dict(local, num_hidden_layers=1), decoder_config=dict(local, num_hidden_layers=decoder_layers),
        global_config=dict(hidden_size=global_w, num_hidden_layers=global_layers,
                           num_attention_heads=max(4, global_w // 64)))
    with torch.device(device):
        model = FastBltForCausalLM(config).eval()
    # a random patcher is near-uniform (every byte a patch): spread its entropies
    with torch.no_grad(), torch.device(device):
        model.model.patcher.lm_head.weight.mul_(8.0)
        ids = torch.randint(4, 260, (1, 256))
        pos = torch.arange(256)[None]
        mask = blt_hf.masks.causal_mask(pos, pos, torch.ones(1, 256, dtype=torch.bool))
        ent = blt_hf.sampling.entropy(model.model.patcher(ids, pos, mask))
        model.config.patching_threshold = ent.flatten().quantile(0.75).item()
    return model


def synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def best_of(repeats, fn):
    """(min seconds over `repeats` runs, last result): the CPU is shared, the minimum is the least noisy."""
    best = float("inf")
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        out = fn()
        synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


def run_ours(model, prompts, new_bytes, kwargs, repeats=1):
    totals = dict(bytes=0, seconds=0.0, decoder_calls=0, global_calls=0, accepted=0, drafted=0,
                  paper_decoder_calls=0, paper_global_calls=0)
    for ids in prompts:
        model.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=None, **kwargs)  # warm-up
        seconds, out = best_of(repeats, lambda: model.generate(ids, max_new_tokens=new_bytes, do_sample=False,
                                                               eos_token_id=None, return_dict_in_generate=True,
                                                               **kwargs))
        totals["seconds"] += seconds
        totals["bytes"] += out.sequences.shape[1] - ids.shape[1]
        for key, field in (("decoder_calls", "decoder_calls"), ("global_calls", "global_calls"),
                           ("accepted", "accepted_bytes"), ("drafted", "drafted_bytes"),
                           ("paper_decoder_calls", "paper_decoder_calls"), ("paper_global_calls", "paper_global_calls")):
            totals[key] += int(getattr(out, field).sum())
    return totals


def run_transformers(model, prompts, new_bytes, repeats=1):
    """transformers' BltForCausalLM on the same weights; use_cache=False is its only correct mode."""
    from transformers import BltForCausalLM

    with tempfile.TemporaryDirectory() as path:
        blt_hf.export_to_transformers_blt(model, path)
        ref = BltForCausalLM.from_pretrained(path, dtype=model.dtype).to(model.device).eval()
    totals = dict(bytes=0, seconds=0.0, decoder_calls=0, global_calls=0, accepted=0, drafted=0)
    for ids in prompts:
        seconds, out = best_of(repeats, lambda: ref.generate(
            ids, max_new_tokens=new_bytes, min_new_tokens=new_bytes, do_sample=False, use_cache=False,
            suppress_tokens=[0, 1, 3], eos_token_id=None, pad_token_id=0))
        totals["seconds"] += seconds
        n = out.shape[1] - ids.shape[1]
        totals.update(bytes=totals["bytes"] + n, decoder_calls=totals["decoder_calls"] + n,
                      global_calls=totals["global_calls"] + n)  # one full forward per byte
    totals.update(paper_decoder_calls=totals["decoder_calls"], paper_global_calls=totals["global_calls"])
    return totals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="saved FastBlt directory (default: small random model)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny", help="random model size without --model")
    parser.add_argument("--new-bytes", type=int, default=512)
    parser.add_argument("--prompts", nargs="+", default=["def fibonacci(n):\n    "])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny models: 1 is fastest)")
    parser.add_argument("--block-size", type=int, default=None, help="BLT-D / BLT-DV block (default: trained, or 4)")
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument("--settings", nargs="+", default=None, help=f"subset of {[n for n, _ in SETTINGS]}")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per setting; the fastest is kept")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--peak-gbps", type=float, default=None, help="device memory bandwidth, for utilisation")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = FastBltForCausalLM.from_pretrained(args.model).eval() if args.model else random_model(args.preset, device=args.device)
    model = model.to(device=args.device, dtype=getattr(torch, args.dtype))
    tokenizer = FastBltTokenizer()
    prompts = [tokenizer(p, return_tensors="pt").input_ids.to(args.device) for p in args.prompts]
    block = args.block_size or model.config.diffusion_block_size or 4
    params = param_counts(model)
    rows = {}
    for name, kwargs in SETTINGS:
        if args.settings and name not in args.settings and name != "ar":  # AR is the reference row
            continue
        kwargs = dict(kwargs)
        if "diffusion" in kwargs["decoding"]:
            kwargs.update(block_size=block, force_diffusion=True)
        rows[name] = run_ours(model, prompts, args.new_bytes, kwargs, args.repeats)
    if not args.skip_transformers:
        rows["transformers_blt"] = run_transformers(model, prompts, args.new_bytes, args.repeats)
    report(rows, params, args, block)


def report(rows, params, args, block):
    bw_ar = bandwidth_gb(params, rows["ar"]["decoder_calls"], rows["ar"]["global_calls"])
    width = torch.finfo(getattr(torch, args.dtype)).bits // 8
    table = []
    for name, r in rows.items():
        bw = bandwidth_gb(params, r["decoder_calls"], r["global_calls"])
        table.append(dict(setting=name, bytes=r["bytes"], bytes_per_s=r["bytes"] / r["seconds"],
                          decoder_calls_per_byte=r["decoder_calls"] / r["bytes"],
                          global_calls_per_byte=r["global_calls"] / r["bytes"],
                          acceptance=r["accepted"] / r["drafted"] if r["drafted"] else None,
                          est_bandwidth_gb=bw, bandwidth_reduction_vs_ar=1 - bw / bw_ar,
                          paper_global_calls_per_byte=r["paper_global_calls"] / r["bytes"],
                          paper_bandwidth_reduction_vs_ar=1 - bandwidth_gb(
                              params, r["paper_decoder_calls"], r["paper_global_calls"]) / bw_ar,
                          # weights read per second: eq. 8's passes at this run's bytes per weight
                          weight_gb_per_s=bw * width / 2 / r["seconds"]))
        if args.peak_gbps:
            table[-1]["bandwidth_utilisation"] = table[-1]["weight_gb_per_s"] / args.peak_gbps
    print(f"device: {args.device} ({args.dtype}), {torch.get_num_threads()} CPU thread(s), torch {torch.__version__}; "
          f"model {args.model or args.preset}; block size {block}; "
          f"{len(args.prompts)} prompt(s) x {args.new_bytes} new bytes; params {params}")
    print(f"{'setting':18s} {'bytes':>6s} {'bytes/s':>9s} {'dec/byte':>9s} {'glob/byte':>9s} {'accept':>7s} "
          f"{'BW GB':>9s} {'BW red.':>8s} {'paper glob/byte':>15s} {'paper BW red.':>13s} {'weight GB/s':>11s}")
    for t in table:
        acc = f"{t['acceptance']:.2f}" if t["acceptance"] is not None else "-"
        print(f"{t['setting']:18s} {t['bytes']:6d} {t['bytes_per_s']:9.1f} {t['decoder_calls_per_byte']:9.3f} "
              f"{t['global_calls_per_byte']:9.3f} {acc:>7s} {t['est_bandwidth_gb']:9.5f} "
              f"{100 * t['bandwidth_reduction_vs_ar']:7.1f}% {t['paper_global_calls_per_byte']:15.3f} "
              f"{100 * t['paper_bandwidth_reduction_vs_ar']:12.1f}% {t['weight_gb_per_s']:11.2f}"
              + (f" ({100 * t['bandwidth_utilisation']:.1f}% of peak)" if args.peak_gbps else ""))
    if "transformers_blt" in rows:
        speedup = table[0]["bytes_per_s"] / table[-1]["bytes_per_s"]
        print(f"cached AR vs transformers BltForCausalLM.generate(use_cache=False): {speedup:.1f}x bytes/s")
    print(json.dumps(dict(params=params, new_bytes=args.new_bytes, threads=torch.get_num_threads(),
                          device=args.device, dtype=args.dtype, results=table)))


if __name__ == "__main__":
    sys.exit(main())
