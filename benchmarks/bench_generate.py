"""Generation benchmark: every blt_hf decoder vs transformers' BltForCausalLM, same weights, one run.

    python benchmarks/bench_generate.py [--model DIR | --preset tiny|small|1b] [--new-bytes 256]
        [--prompts 8 | --prompt-text "a" "b"] [--settings ar blt_s_k4 ...] [--skip-transformers]
        [--out-dir benchmarks/results] [--threads 1] [--repeats 1] [--device cuda --dtype bfloat16 --peak-gbps 4800]

With --model (default: the shipped model) the prompts are held-out files: the validation split of
`split_documents(stdlib_documents())`, N evenly spaced, each BOS + up to --prompt-bytes bytes from the
first line after 40% of the file, cut back to a newline. With --preset a random BLT of that size is
built (random weights: quality and acceptance are meaningless, speed and costs are not). Every
setting generates --new-bytes bytes per prompt, greedy, EOS ignored, batch 1, after an 8-byte warm-up.
Per setting: bytes/s and speed vs our AR, decoder / global passes per byte as we run them and as the
paper counts them (blt_hf.cost), eq. 8 bandwidth and its reduction vs AR, the achieved weight
traffic in GB/s (and with --peak-gbps its share of the device's bandwidth), the continuation's bits
per byte under the model's own next-byte path, the fraction of bytes equal to our greedy AR output,
and acceptance. Prints the table and one JSON line; with --out-dir also writes
generation_report.{md,json,png} there.
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import blt_hf
from blt_hf import FastBltConfig, FastBltForCausalLM, FastBltTokenizer
from blt_hf.cost import bandwidth_gb, param_counts
from blt_hf.data import split_documents, stdlib_documents
from blt_hf.generation_quality import SETTINGS as QUALITY_SETTINGS
from blt_hf.generation_quality import continuation_prompts, to_bytes, to_ids

SPECIAL = [0, 1, 3]  # PAD, BOS, MASK: never generated
# The quality benchmark's settings (same name, same decoding: BLT-D rows are the paper's rules), plus
# the speed-only ones this benchmark also times.
SETTINGS = [*QUALITY_SETTINGS.items(),
            ("blt_s_k8", dict(decoding="self_speculation", draft_length=8)),
            ("blt_dv_conf0.3", dict(decoding="diffusion_verify", unmasking="confidence", confidence_threshold=0.3)),
            # BLT-D as `generate(decoding="diffusion")` runs it: the model's generation_config.json (the shipped
            # model: conf 0.7, first byte from the next-byte head, unmasking_fallback="end_block"), issue 8's goal
            ("blt_d_default", dict(decoding="diffusion")),
            # static cache, steps compiled (CUDA: mode="reduce-overhead", CUDA graphs; CPU: inductor's default mode)
            ("ar_compiled", dict(QUALITY_SETTINGS["ar"], compiled=True)),
            ("blt_d_conf0.7_compiled", dict(QUALITY_SETTINGS["blt_d_conf0.7"], compiled=True))]
COUNTS = (("decoder_calls", "decoder_calls"), ("global_calls", "global_calls"), ("accepted", "accepted_bytes"),
          ("drafted", "drafted_bytes"), ("paper_decoder_calls", "paper_decoder_calls"),
          ("paper_global_calls", "paper_global_calls"))

PRESETS = {  # local width, global width, global layers, patcher width, hash table rows, decoder layers
    "tiny": (64, 128, 2, 64, 1000, 2),  # HF_NOTES §5.4's model, ~0.9M parameters
    "small": (256, 512, 4, 128, 4096, 2),  # ~18M parameters
    "1b": (1024, 2048, 24, 256, 500_000, 9),  # BLT-1B-shaped (global 24 x 2048, local 1024): GPU speed only
}


PAPER_NOTE = """\
Paper reference (Fast BLT, arXiv 2605.08044; 1B/3B models, L = 256-512 bytes, greedy; estimated
bandwidth by eq. 8, never wall-clock): BLT-D-4 about 50% lower bandwidth than AR at nearly equal
quality; BLT-D-16 87-92% lower with a quality loss on code; BLT-S up to 77% lower with identical
output (k = 4 accepted 94-99% of drafted bytes); BLT-DV up to 81% lower. Small models accept far
fewer drafted bytes, so expect much smaller reductions here."""
TRANSFORMERS_NOTE = """transformers' BltForCausalLM does not always produce our greedy AR bytes: when the open last patch
has reached max_patch_length, its generate() still decodes the last byte with the previous patch's
latent, while its own forward on the sequence one byte longer (and our cached decoder) uses the
closed patch; the logits then differ (checked: with the extra byte its logits equal ours to 2e-6)."""



# ----------------------------------------------------------------------------- models, prompts and scoring


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


def held_out_prompts(docs, n: int, prompt_bytes: int):
    """[(document name, BOS + prompt ids (L,) long)] for n evenly spaced documents (see the module docstring)."""
    return [(name, to_ids(chunk, bos=True)[0]) for name, chunk in continuation_prompts(docs, n, prompt_bytes, None)]


@torch.no_grad()
def continuation_bits(model, prompt, continuation):
    """(total bits, bytes) of `continuation` (C,) after `prompt` (L,) on the model's next-byte path."""
    # prompts and continuations are kept on the host; the model may be on a GPU
    continuation = continuation.to(model.device)
    ids = torch.cat([prompt.to(model.device), continuation])[None]
    logits = model(input_ids=ids).logits[0, len(prompt) - 1: -1].float()  # position i predicts byte i + 1
    nats = F.cross_entropy(logits, continuation, reduction="sum")
    return float(nats) / math.log(2), len(continuation)


# ----------------------------------------------------------------------------- running the decoders


def run_ours(model, prompts, new_bytes, kwargs, repeats):
    """Totals over the prompts plus every continuation (greedy, EOS ignored)."""
    r = dict(seconds=0.0, bytes=0, continuations=[], **{key: 0 for key, _ in COUNTS})
    if kwargs.pop("compiled", False):
        from transformers.generation.configuration_utils import CompileConfig

        mode = "reduce-overhead" if model.device.type == "cuda" else "default"
        kwargs = dict(kwargs, cache_implementation="static", compile_config=CompileConfig(dynamic=False, mode=mode))
    for ids in prompts:
        ids = ids[None].to(model.device)
        # warm-up; a static cache's first call at a new cache size compiles, so that one is not timed either
        warm = new_bytes if kwargs.get("cache_implementation") == "static" else 8
        model.generate(ids, max_new_tokens=warm, do_sample=False, eos_token_id=None, **kwargs)
        seconds, out = best_of(repeats, lambda: model.generate(
            ids, max_new_tokens=new_bytes, do_sample=False, eos_token_id=None, return_dict_in_generate=True,
            **kwargs))
        cont = out.sequences[0, ids.shape[1]:].cpu()
        r["seconds"] += seconds
        r["bytes"] += len(cont)
        r["continuations"].append(cont)
        for key, field in COUNTS:
            r[key] += int(getattr(out, field).sum())
    return r


def run_transformers(model, prompts, new_bytes, repeats):
    """transformers' BltForCausalLM on the same weights (use_cache=False: its only correct mode);
    every byte is one full forward (patcher, encoder, global, decoder over the whole sequence)."""
    from transformers import BltForCausalLM

    with tempfile.TemporaryDirectory() as path:
        blt_hf.export_to_transformers_blt(model, path)
        ref = BltForCausalLM.from_pretrained(path, dtype=model.dtype).to(model.device).eval()
    r = dict(seconds=0.0, bytes=0, continuations=[], **{key: 0 for key, _ in COUNTS})
    for ids in prompts:
        ids = ids[None].to(model.device)
        seconds, out = best_of(repeats, lambda: ref.generate(
            ids, max_new_tokens=new_bytes, min_new_tokens=new_bytes, do_sample=False, use_cache=False,
            suppress_tokens=SPECIAL, eos_token_id=None, pad_token_id=0))
        cont = out[0, ids.shape[1]:].cpu()
        r["seconds"] += seconds
        r["continuations"].append(cont)
        for key in ("bytes", "decoder_calls", "global_calls", "paper_decoder_calls", "paper_global_calls"):
            r[key] += len(cont)
    return r


# ----------------------------------------------------------------------------- the report


def summarize(model, prompts, rows, params, width, peak_gbps=None):
    """Per setting: speed, calls per byte (ours and the paper's), eq. 8 bandwidth, weight traffic,
    quality, acceptance. `width`: bytes per weight at the run's dtype."""
    ar, n = rows["ar"], len(prompts)
    bw_ar = bandwidth_gb(params, ar["decoder_calls"], ar["global_calls"]) / n
    table = []
    for name, r in rows.items():
        bits = [continuation_bits(model, p, c) for p, c in zip(prompts, r["continuations"])]
        same = sum(int((c == a[: len(c)]).sum()) for c, a in zip(r["continuations"], ar["continuations"]))
        bw = bandwidth_gb(params, r["decoder_calls"], r["global_calls"]) / n
        paper_bw = bandwidth_gb(params, r["paper_decoder_calls"], r["paper_global_calls"]) / n
        row = dict(
            setting=name, bytes=r["bytes"], seconds=r["seconds"], bytes_per_s=r["bytes"] / r["seconds"],
            speed_vs_ar=(r["bytes"] / r["seconds"]) / (ar["bytes"] / ar["seconds"]),
            decoder_calls_per_byte=r["decoder_calls"] / r["bytes"],
            global_calls_per_byte=r["global_calls"] / r["bytes"],
            paper_global_calls_per_byte=r["paper_global_calls"] / r["bytes"],
            est_bandwidth_gb_per_seq=bw, bandwidth_reduction_vs_ar=1 - bw / bw_ar,
            paper_bandwidth_reduction_vs_ar=1 - paper_bw / bw_ar,
            weight_gb_per_s=bw * n * width / 2 / r["seconds"],  # eq. 8's passes at this run's bytes per weight
            bpb=sum(b for b, _ in bits) / sum(k for _, k in bits), same_as_ar_greedy=same / ar["bytes"],
            identical_to_ar=all(torch.equal(c, a) for c, a in zip(r["continuations"], ar["continuations"])),
            acceptance=r["accepted"] / r["drafted"] if r["drafted"] else None)
        if peak_gbps:
            row["bandwidth_utilisation"] = row["weight_gb_per_s"] / peak_gbps
        table.append(row)
    return table


def goals(table):
    """The issue's goals on this CPU -> [(description, passed)]."""
    row = {t["setting"]: t for t in table}
    out = []
    d = row.get("blt_d_conf0.7")
    if d:
        ok = d["speed_vs_ar"] >= 2 and d["decoder_calls_per_byte"] <= 0.5
        out.append((f"BLT-D conf 0.7 >= 2x AR bytes/s ({d['speed_vs_ar']:.2f}x) with decoder calls/byte <= 0.5 "
                    f"({d['decoder_calls_per_byte']:.3f})", ok))
    d = row.get("blt_d_default")
    if d:
        out.append((f"BLT-D with the model's generation defaults >= 2x AR bytes/s ({d['speed_vs_ar']:.2f}x)",
                    d["speed_vs_ar"] >= 2))
    if "transformers_blt" in row:
        x = 1 / row["transformers_blt"]["speed_vs_ar"]
        out.append((f"AR >= 5x transformers' BltForCausalLM.generate ({x:.1f}x)", x >= 5))
    c, dc = row.get("ar_compiled"), row.get("blt_d_conf0.7_compiled")
    if c:
        out.append(("compiled AR byte-identical to eager AR", c["identical_to_ar"]))
        out.append((f"compiled AR >= 3x eager AR bytes/s ({c['speed_vs_ar']:.2f}x)", c["speed_vs_ar"] >= 3))
        if "transformers_blt" in row:
            x = c["speed_vs_ar"] / row["transformers_blt"]["speed_vs_ar"]
            out.append((f"compiled AR >= 20x transformers' BltForCausalLM.generate ({x:.1f}x)", x >= 20))
    if c and dc:
        x = dc["speed_vs_ar"] / c["speed_vs_ar"]
        out.append((f"compiled BLT-D conf 0.7 >= 2x compiled AR bytes/s ({x:.2f}x)", x >= 2))
    exact = [t["setting"] for t in table if t["setting"].startswith(("blt_s_", "blt_dv_"))]
    if exact:
        bad = [s for s in exact if not row[s]["identical_to_ar"]]
        out.append((f"BLT-S and BLT-DV byte-identical to AR greedy ({len(exact) - len(bad)}/{len(exact)} settings"
                    + (f"; differ: {', '.join(bad)})" if bad else ")"), not bad))
    return out


def text_of(ids) -> str:
    return to_bytes(ids).decode("utf-8", errors="replace")


def samples(prompts, rows, names=("ar", "blt_d_conf0.7", "blt_d_onestep", "blt_dv_conf0.3")):
    """{"prompt": ..., setting: continuation} for one prompt, to read by eye: the prompt whose greedy AR
    continuation has the most distinct bytes (small models often continue with blank lines)."""
    i = max(range(len(prompts)), key=lambda i: len(set(rows["ar"]["continuations"][i].tolist())))
    return {"prompt": text_of(prompts[i])} | {n: text_of(rows[n]["continuations"][i]) for n in names if n in rows}


def markdown(table, checks, meta, sample):
    head = ("| setting | bytes/s | vs AR | decoder calls/byte | global calls/byte (paper's count) | est. BW GB/seq "
            "| BW vs AR (paper's count) | bpb | = AR greedy | acceptance |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [f"| {t['setting']} | {t['bytes_per_s']:.1f} | {t['speed_vs_ar']:.2f}x | {t['decoder_calls_per_byte']:.3f} "
             f"| {t['global_calls_per_byte']:.3f} ({t['paper_global_calls_per_byte']:.3f}) "
             f"| {t['est_bandwidth_gb_per_seq']:.4f} | {0.0 - 100 * t['bandwidth_reduction_vs_ar']:+.1f}% "
             f"({0.0 - 100 * t['paper_bandwidth_reduction_vs_ar']:+.1f}%) | {t['bpb']:.3f} "
             f"| {100 * t['same_as_ar_greedy']:.1f}% "
             f"| {'-' if t['acceptance'] is None else format(t['acceptance'], '.1%')} |" for t in table]
    goal_lines = [f"- {'PASS' if ok else 'FAIL'}: {text}" for text, ok in checks]
    return "\n".join([
        "# Generation report", "",
        f"Model `{meta['model']}` (block size {meta['block_size']}); {meta['prompts']} prompts "
        f"({meta['prompt_bytes']}-byte budget, from the validation files) x {meta['new_bytes']} new bytes, greedy, "
        f"batch 1; {meta['device']}. bytes/s is wall-clock over the timed runs (best of {meta['repeats']}); "
        "est. BW is Fast BLT eq. 8 (16-bit weights, hash tables and entropy model excluded) per sequence; "
        "bpb scores each continuation with the model's next-byte path (lower = closer to the model's own mode, "
        "not necessarily better text); '= AR greedy' is the fraction of bytes equal to our greedy AR output.", "",
        f"Reproduce: `{meta['command']}` (prompt files: {', '.join(meta['prompt_files'])}).", "",
        head, *lines, "", "Goals (issues 5 and 11):", "", *goal_lines, "", PAPER_NOTE, "",
        *([TRANSFORMERS_NOTE, ""] if any(t["setting"] == "transformers_blt" and not t["identical_to_ar"]
                                         for t in table) else []),
        "Sample (the prompt, then each setting's continuation):", "",
        *[f"{name}:\n\n~~~~text\n{text}\n~~~~\n" for name, text in sample.items()],
        "![quality vs speed and bandwidth](generation_report.png)", ""])


def figure(table, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import NullFormatter

    family = {"ar": ("C3", "ours, AR"), "blt_d_": ("C0", "BLT-D"), "blt_s_": ("C1", "BLT-S"),
              "blt_dv_": ("C2", "BLT-DV"), "transformers": ("C7", "transformers BLT")}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    ys = [t["bpb"] for t in table]
    y_span = (max(ys) - min(ys)) or 1.0
    for ax, key, label in ((axes[0], "bytes_per_s", "wall-clock bytes/s (CPU)"),
                           (axes[1], "est_bandwidth_gb_per_seq", "estimated bandwidth, GB per sequence (eq. 8)")):
        placed, seen = [], set()
        for t in table:
            x, y = t[key], t["bpb"]
            color, name = next(v for k, v in family.items() if t["setting"].startswith(k))
            ax.scatter(x, y, color=color, label=None if name in seen else name)
            seen.add(name)
            # Stack the labels of points that (nearly) coincide instead of printing them on top of each other.
            near = sum(abs(math.log(x / px)) < 0.15 and abs(y - py) < 0.05 * y_span for px, py in placed)
            placed.append((x, y))
            ax.annotate(t["setting"], (x, y), fontsize=7, xytext=(4, 4 + 9 * near), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel("continuation bits per byte (next-byte path)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[0].set_title("quality vs speed")
    axes[1].set_title("quality vs estimated bandwidth")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(table):
    print(f"{'setting':18s} {'bytes/s':>8s} {'vs AR':>6s} {'dec/B':>6s} {'glob/B':>6s} {'paper':>6s} {'BW GB':>8s} "
          f"{'BW red':>7s} {'paper':>7s} {'W GB/s':>7s} {'bpb':>6s} {'=AR':>6s} {'accept':>6s}")
    for t in table:
        acc = "-" if t["acceptance"] is None else f"{t['acceptance']:.2f}"
        util = f" ({100 * t['bandwidth_utilisation']:.1f}% of peak)" if "bandwidth_utilisation" in t else ""
        print(f"{t['setting']:18s} {t['bytes_per_s']:8.1f} {t['speed_vs_ar']:5.2f}x {t['decoder_calls_per_byte']:6.3f} "
              f"{t['global_calls_per_byte']:6.3f} {t['paper_global_calls_per_byte']:6.3f} "
              f"{t['est_bandwidth_gb_per_seq']:8.4f} {100 * t['bandwidth_reduction_vs_ar']:6.1f}% "
              f"{100 * t['paper_bandwidth_reduction_vs_ar']:6.1f}% {t['weight_gb_per_s']:7.2f} {t['bpb']:6.3f} "
              f"{t['same_as_ar_greedy']:6.3f} {acc:>6s}{util}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="FastBlt checkpoint (default: the shipped model)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="a random model instead of --model")
    parser.add_argument("--out-dir", default=None, help="write generation_report.{md,json,png} here")
    parser.add_argument("--prompts", type=int, default=8, help="number of held-out prompts")
    parser.add_argument("--prompt-text", nargs="+", default=None, help="explicit prompts instead of held-out ones")
    parser.add_argument("--new-bytes", type=int, default=256)
    parser.add_argument("--prompt-bytes", type=int, default=192, help="prompt budget (cut back to a newline)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadiest on a shared CPU)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per prompt and setting; fastest kept")
    parser.add_argument("--settings", nargs="+", default=None, help=f"subset of {[n for n, _ in SETTINGS]} (+ ar)")
    parser.add_argument("--block-size", type=int, default=None, help="BLT-D / BLT-DV block (default: trained, or 4)")
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--peak-gbps", type=float, default=None, help="device memory bandwidth, for utilisation")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]  # other work on the CPU (a training run) slows every setting alike
    from transformers.utils import logging

    logging.disable_progress_bar()
    dtype = getattr(torch, args.dtype)
    if args.preset:
        model, source = random_model(args.preset, device=args.device), f"random {args.preset} preset"
    else:
        source = args.model or blt_hf.DEFAULT_MODEL_PATH
        model = FastBltForCausalLM.from_pretrained(source)
    model = model.to(device=args.device, dtype=dtype).eval()
    # EOS ignored: generate(eos_token_id=None) means "unset" (the model's EOS applies), as in transformers
    model.generation_config.eos_token_id = None
    block = args.block_size or model.config.diffusion_block_size or 4
    if args.prompt_text:
        named = [(f"prompt {i}", FastBltTokenizer()(p, return_tensors="pt").input_ids[0])
                 for i, p in enumerate(args.prompt_text)]
    else:
        named = held_out_prompts(split_documents(stdlib_documents())[1], args.prompts, args.prompt_bytes)
    prompts = [ids for _, ids in named]
    rows = {}
    for name, kwargs in SETTINGS:
        if args.settings and name not in args.settings and name != "ar":  # AR is the reference row
            continue
        if "diffusion" in kwargs["decoding"]:
            kwargs = dict(kwargs, block_size=block, force_diffusion=True)
        start = time.perf_counter()
        rows[name] = run_ours(model, prompts, args.new_bytes, kwargs, args.repeats)
        print(f"  {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if not args.skip_transformers:
        rows["transformers_blt"] = run_transformers(model, prompts, args.new_bytes, args.repeats)
    params = param_counts(model)
    table = summarize(model, prompts, rows, params, torch.finfo(dtype).bits // 8, args.peak_gbps)
    checks = goals(table)
    meta = dict(model=source, block_size=block, prompts=len(prompts), prompt_bytes=args.prompt_bytes,
                new_bytes=args.new_bytes, repeats=args.repeats, threads=torch.get_num_threads(),
                device=f"{args.device} ({args.dtype}), {torch.get_num_threads()} CPU thread(s), torch "
                       f"{torch.__version__}, load average {load:.1f} at start",
                params=params, prompt_files=[name for name, _ in named],
                command=" ".join(["python benchmarks/bench_generate.py", *(sys.argv[1:] if argv is None else argv)]))
    sample = samples(prompts, rows)
    result = dict(meta, results=table, goals=[dict(goal=text, passed=ok) for text, ok in checks], sample=sample)
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "generation_report.md").write_text(markdown(table, checks, meta, sample))
        (out / "generation_report.json").write_text(json.dumps(result, indent=1))
        figure(table, out / "generation_report.png")
    print(meta["device"] + f"; model {source}; {len(prompts)} prompts x {args.new_bytes} new bytes")
    print_table(table)
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
