"""One global-transformer layer of a model, one query row, one thread: its time with the weights hot in
the CPU caches, and after a buffer larger than the last-level cache was written (weights read from memory).

    python benchmarks/probe_cache_residency.py [MODEL_DIR] [--flush-mb 64]

Generation runs between these two (benchmarks/time_components.py times the whole global pass there): the
gap says how much of a decoding step is the weights' trip from memory rather than arithmetic.
"""
import argparse
import time

import torch

import blt_hf
from blt_hf import FastBltForCausalLM


def per_call_ms(fn, n):
    for _ in range(max(n // 10, 1)):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=blt_hf.DEFAULT_MODEL_PATH)
    parser.add_argument("--flush-mb", type=int, default=64, help="bytes written between calls (above the L3 size)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = FastBltForCausalLM.from_pretrained(args.model).eval()
    stack = model.model.global_transformer
    layer, width = stack.layers[0], model.config.global_config.hidden_size
    x, pos = torch.randn(1, 1, width), torch.zeros(1, 1, dtype=torch.long)
    rotary, mask = stack.rotary(pos, x.dtype), torch.zeros(1, 1, 1, 1)
    flush = torch.zeros(args.flush_mb * 2**20 // 4)
    with torch.inference_mode():
        hot = per_call_ms(lambda: layer(x, rotary, mask, None), 500)
        flush_only = per_call_ms(lambda: flush.add_(1.0), 50)
        cold = per_call_ms(lambda: (flush.add_(1.0), layer(x, rotary, mask, None)), 50) - flush_only
    weights = sum(p.numel() * p.element_size() for p in layer.parameters())
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    print(f"global layer: {weights / 1e6:.1f} MB of {model.dtype} weights (model {model_bytes / 1e6:.1f} MB); "
          f"hot {hot:.3f} ms, after a {args.flush_mb} MB flush {cold:.3f} ms per call (1 row, 1 thread)")


if __name__ == "__main__":
    main()
